"""The keyword engine: what an inbound text means for consent.

Pure: no Flask, no Celery, no database. Rules, in order (spec §4):
1. Telnyx's verdict, ``autoresponse_type`` of STOP/START/HELP in any case;
2. exact match of the normalised text against the keyword lists;
3. otherwise an ordinary message (``op`` is None).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

STOP, START, HELP = "stop", "start", "help"

# Telnyx's default keywords, which make Telnyx set or lift its block rule itself.
TELNYX_DEFAULT_KEYWORDS: Mapping[str, tuple[str, ...]] = {
    STOP: ("STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"),
    START: ("START", "UNSTOP"),
    HELP: ("HELP",),
}
# Valid revocations per se under FCC order 24-24 that Telnyx's defaults miss: Telnyx sets no
# block for them, so only this service knows the number opted out.
FCC_REVOCATION_KEYWORDS: tuple[str, ...] = ("REVOKE", "OPT OUT", "OPTOUT", "OPT-OUT")

DEFAULT_KEYWORDS: Mapping[str, tuple[str, ...]] = {
    STOP: TELNYX_DEFAULT_KEYWORDS[STOP] + FCC_REVOCATION_KEYWORDS,
    START: TELNYX_DEFAULT_KEYWORDS[START],
    HELP: TELNYX_DEFAULT_KEYWORDS[HELP],
}

# Telnyx's enum says "info" where its docs say "help": both mean the help operation.
_AUTORESPONSE_OPS = {"stop": STOP, "start": START, "help": HELP, "info": HELP}

_WHITESPACE = re.compile(r"\s+")
_JOINERS = re.compile(r"[\s\-‐-―_.]+")


@dataclass(frozen=True)
class Verdict:
    op: str | None  # stop | start | help | a custom op | None for an ordinary message
    source: str | None  # telnyx | keyword | None
    keyword: str | None  # the keyword that matched, as configured
    normalized: str


def _is_edge_noise(char: str) -> bool:
    # Punctuation (P*), symbols and emoji (S*), marks left over from emoji sequences (M*).
    return unicodedata.category(char)[0] in "PSMZC"


def normalize(text: str) -> str:
    """Reduce a text to the form keywords are matched in (spec §4)."""
    text = unicodedata.normalize("NFKC", text)
    # Format characters (zero-width joiners, BOMs, direction marks) carry no meaning here.
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    # Fold accents: ARRÊT is ARRET.
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = _WHITESPACE.sub(" ", text.casefold()).strip()
    start, end = 0, len(text)
    while start < end and _is_edge_noise(text[start]):
        start += 1
    while end > start and _is_edge_noise(text[end - 1]):
        end -= 1
    return text[start:end]


def match_key(normalized: str) -> str:
    """Multi-word keywords match with any spacing or hyphen: OPT OUT = OPT-OUT = OPTOUT."""
    return _JOINERS.sub("", normalized)


class KeywordTable:
    """Keyword → op lookup built from configured lists (defaults first, later ones win)."""

    def __init__(self, lists: Iterable[tuple[str, Iterable[str]]]) -> None:
        self._by_key: dict[str, tuple[str, str]] = {}
        for op, keywords in lists:
            for keyword in keywords:
                key = match_key(normalize(keyword))
                if key and self._by_key.get(key, ("",))[0] != op:
                    self._by_key[key] = (op, keyword)

    def lookup(self, normalized: str) -> tuple[str, str] | None:
        return self._by_key.get(match_key(normalized))


DEFAULT_TABLE = KeywordTable(DEFAULT_KEYWORDS.items())


def classify(
    text: str, autoresponse_type: str | None = None, table: KeywordTable = DEFAULT_TABLE
) -> Verdict:
    """Decide what an inbound text means for consent."""
    normalized = normalize(text)
    if autoresponse_type:
        op = _AUTORESPONSE_OPS.get(autoresponse_type.strip().casefold())
        if op is not None:
            return Verdict(op=op, source="telnyx", keyword=autoresponse_type, normalized=normalized)
    match = table.lookup(normalized)
    if match is not None:
        return Verdict(op=match[0], source="keyword", keyword=match[1], normalized=normalized)
    return Verdict(op=None, source=None, keyword=None, normalized=normalized)
