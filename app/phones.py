"""Phone numbers: E.164 normalisation, country of origin and toll-free detection."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType


class InvalidPhoneNumber(ValueError):
    pass


@lru_cache(maxsize=65536)
def _parse(number: str) -> phonenumbers.PhoneNumber:
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
    return phonenumbers.format_number(_parse(number), phonenumbers.PhoneNumberFormat.E164)


def country_of(number: str) -> str | None:
    """ISO 3166-1 alpha-2 region of a number (``US``, ``MX``), or None when ambiguous."""
    region = phonenumbers.region_code_for_number(_parse(number))
    return None if region in (None, "ZZ", "001") else region


def is_toll_free(number: str) -> bool:
    return phonenumbers.number_type(_parse(number)) == PhoneNumberType.TOLL_FREE
