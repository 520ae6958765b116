"""Phone numbers: E.164 normalisation, country of origin and toll-free detection."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType


class InvalidPhoneNumber(ValueError):
    pass


# A North American number already in E.164 form: area code and exchange start 2-9, ten digits.
# Such text is its own canonical form and always a possible number, so the worker skips the
# parser for the common case (tests check this agrees with phonenumbers).
_NANP_E164 = re.compile(r"\+1[2-9]\d\d[2-9]\d{6}")


@lru_cache(maxsize=65536)
def _parse(number: str) -> phonenumbers.PhoneNumber:
    if _NANP_E164.fullmatch(number):
        return phonenumbers.PhoneNumber(country_code=1, national_number=int(number[2:]))
    text = number.strip()
    if not text.startswith("+"):
        raise InvalidPhoneNumber(f"{number!r} is not in E.164 form (+ and country code)")
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"{number!r} is not a phone number: {exc}") from None
    # Possible, not strictly valid: new number ranges must not be refused by an old table.
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber(f"{number!r} has the wrong length for its country")
    return parsed


def to_e164(number: str) -> str:
    """Return the canonical E.164 form of ``number`` or raise InvalidPhoneNumber."""
    if _NANP_E164.fullmatch(number):
        return number
    return phonenumbers.format_number(_parse(number), phonenumbers.PhoneNumberFormat.E164)


# A US short code: five or six digits, no country code (the CSCA assigns 5 and 6 digits).
_SHORT_CODE = re.compile(r"[1-9]\d{4,5}")


def is_short_code(number: str) -> bool:
    return _SHORT_CODE.fullmatch(number) is not None


def to_our_number(number: str) -> str:
    """One of the organisation's sending numbers: a short code as its digits, else E.164.
    Subscribers are always E.164 (to_e164)."""
    text = number.strip()
    return text if is_short_code(text) else to_e164(text)


# Cached by the number's text: a subscriber's STOP, START and HELP ask again, and the worker
# asks several times per event (classification, audit row, carrier block).
@lru_cache(maxsize=65536)
def country_of(number: str) -> str | None:
    """ISO 3166-1 alpha-2 region of a number (``US``, ``MX``), or None when ambiguous."""
    region = phonenumbers.region_code_for_number(_parse(number))
    return None if region in (None, "ZZ", "001") else region


@lru_cache(maxsize=4096)
def is_toll_free(number: str) -> bool:
    if is_short_code(number):
        return False
    return phonenumbers.number_type(_parse(number)) == PhoneNumberType.TOLL_FREE
