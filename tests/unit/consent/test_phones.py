"""Phone numbers: the North American fast path agrees with the phonenumbers parser."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from app.consent import phones


def _by_the_parser(number: str) -> tuple[str, str | None, bool]:
    parsed = phonenumbers.parse(number, None)
    assert phonenumbers.is_possible_number(parsed)
    region = phonenumbers.region_code_for_number(parsed)
    return (
        phonenumbers.format_number(parsed, PhoneNumberFormat.E164),
        None if region in (None, "ZZ", "001") else region,
        phonenumbers.number_type(parsed) == PhoneNumberType.TOLL_FREE,
    )


def _by_us(number: str) -> tuple[str, str | None, bool]:
    return phones.to_e164(number), phones.country_of(number), phones.is_toll_free(number)


nanp_numbers = st.builds(
    lambda area, exchange, line: f"+1{area}{exchange}{line:04d}",
    st.integers(200, 999),
    st.integers(200, 999),
    st.integers(0, 9999),
)


@settings(max_examples=500)
@given(nanp_numbers)
def test_north_american_fast_path_agrees_with_the_parser(number: str) -> None:
    assert _by_us(number) == _by_the_parser(number)


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+13125550147", ("+13125550147", "US", False)),
        ("+14165550123", ("+14165550123", "CA", False)),
        ("+18005550100", ("+18005550100", "US", True)),
        ("+18335550100", ("+18335550100", "US", True)),
        ("+17875550100", ("+17875550100", "PR", False)),
        ("+525512345678", ("+525512345678", "MX", False)),
        # Not already canonical: the parser's path.
        ("+1 312 555 0147", ("+13125550147", "US", False)),
        (" +13125550147", ("+13125550147", "US", False)),
    ],
)
def test_known_numbers(number: str, expected: tuple[str, str | None, bool]) -> None:
    assert _by_us(number) == expected


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("13125550147", "E.164"),
        ("+1312555014", "wrong length"),
        ("+1-not-a-number", "not a phone number"),
    ],
)
def test_bad_numbers_are_named(number: str, problem: str) -> None:
    with pytest.raises(phones.InvalidPhoneNumber, match=problem):
        phones.to_e164(number)
