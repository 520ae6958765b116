"""The keyword engine: what an inbound text means for consent.

Pure: no Flask, no Celery, no database. Rules, in order (spec §4):

1. Telnyx's verdict: ``autoresponse_type`` STOP/START/HELP (any case; INFO is HELP).
2. Exact keyword: the normalised text equals a keyword of the custom configurations for the
   messaging profile and the sender's country (then ``*``), or of the defaults. Texts that
   only match after folding look-alike letters from other scripts (Cyrillic "ЅТОР") match too.
3. Intent (workers.intent): a per-se revocation word said with only a subject or fillers
   ("I opt out", "STOP NOW") → ``stop``; an opt-out verb whose object is the messaging, or
   a wish or question to stop, or a fixed phrase ("leave me alone") → ``possible_opt_out``;
   negated, or about something else ("cancel my order") → ordinary.
4. Otherwise an ordinary message (``op`` is None).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from app.consent.intent import find_intent
from app.consent.values import Source

STOP, START, HELP = "stop", "start", "help"
POSSIBLE_OPT_OUT = "possible_opt_out"

# Telnyx's default keywords, which make Telnyx set or lift its block rule itself.
TELNYX_DEFAULT_KEYWORDS: Mapping[str, tuple[str, ...]] = {
    STOP: ("STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"),
    START: ("START", "UNSTOP"),
    HELP: ("HELP",),
}
# Valid revocations per se under FCC order 24-24 that Telnyx's defaults miss: Telnyx sets no
# block for them, so only this service knows the number opted out.
FCC_REVOCATION_KEYWORDS: tuple[str, ...] = ("REVOKE", "OPT OUT", "OPTOUT", "OPT-OUT")

# CTIA's universal help keywords besides HELP: they must get an answer, and change no consent.
CTIA_HELP_KEYWORDS: tuple[str, ...] = ("INFO",)

DEFAULT_KEYWORDS: Mapping[str, tuple[str, ...]] = {
    STOP: TELNYX_DEFAULT_KEYWORDS[STOP] + FCC_REVOCATION_KEYWORDS,
    START: TELNYX_DEFAULT_KEYWORDS[START],
    HELP: TELNYX_DEFAULT_KEYWORDS[HELP] + CTIA_HELP_KEYWORDS,
}

# Telnyx's enum says "info" where its docs say "help": both mean the help operation.
OP_ALIASES = {"stop": STOP, "start": START, "help": HELP, "info": HELP}

_WHITESPACE = re.compile(r"\s+")
_JOINERS = re.compile(r"[\s\-‐-―_.]+")


@dataclass(frozen=True)
class Verdict:
    op: str | None  # stop | start | help | possible_opt_out | a custom op | None
    source: str | None  # telnyx | keyword | intent | None
    keyword: str | None  # the keyword or phrase that matched, as configured
    normalized: str
    # What fired: autoresponse_type | exact | lookalike | per_se | verb_with_messages |
    # verb_alone | phrase (workers.intent) | None
    rule: str | None = None


# --- normalisation -----------------------------------------------------------------------------


def _is_edge_noise(char: str) -> bool:
    # Punctuation (P*), symbols and emoji (S*), marks left from emoji sequences (M*),
    # separators (Z*) and controls (C*).
    return unicodedata.category(char)[0] in "PSMZC"


def normalize(text: str) -> str:
    """NFKC, format characters dropped, accents folded, casefolded, white space collapsed,
    surrounding punctuation and emoji stripped (spec §4)."""
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
    return unicodedata.normalize("NFC", text[start:end])


@lru_cache(maxsize=4096)
def _latin_lookalike(char: str) -> str:
    """The Latin letter a letter of another script is made to look like, else the letter.

    decancer's table (Unicode confusables and more) is applied to non-Latin letters only, so
    Latin letters such as ß, digits and emoji are never rewritten.
    """
    if char.isascii() or not char.isalpha() or "LATIN" in unicodedata.name(char, "LATIN"):
        return char
    import decancer_py

    folded = str(decancer_py.parse(char))
    return folded if len(folded) == 1 and folded.isascii() and folded.isalpha() else char


def lookalike_skeleton(text: str) -> str:
    """normalize(text) after replacing letters of other scripts by the Latin letters they
    imitate (ЅТОР → stop). Case matters to look-alikes (Greek Η looks like H, η like n), so
    the folding happens before casefolding."""
    text = unicodedata.normalize("NFKC", text)
    if text.isascii():
        return normalize(text)
    return normalize("".join(_latin_lookalike(ch) for ch in text))


def match_key(normalized: str) -> str:
    """Multi-word keywords match with any spacing or hyphen: OPT OUT = OPT-OUT = OPTOUT."""
    return _JOINERS.sub("", normalized)


# --- keyword tables ----------------------------------------------------------------------------


class KeywordTable:
    """Keyword → (op, keyword) built from (op, keywords) lists; earlier lists win a clash."""

    def __init__(self, lists: Iterable[tuple[str, Iterable[str]]]) -> None:
        self._exact: dict[str, tuple[str, str]] = {}
        self._lookalike: dict[str, tuple[str, str]] = {}
        for op, keywords in lists:
            for keyword in keywords:
                normalized = normalize(keyword)
                key = match_key(normalized)
                if key:
                    self._exact.setdefault(key, (op, keyword))
                    # Only keywords written in Latin letters are targets of look-alikes.
                    skeleton = lookalike_skeleton(keyword)
                    if skeleton.isascii():
                        self._lookalike.setdefault(match_key(skeleton), (op, keyword))

    def lookup(self, normalized: str, skeleton: str | None = None) -> tuple[str, str, str] | None:
        """(op, keyword, rule) for a normalised text (and its look-alike skeleton), or None."""
        found = self._exact.get(match_key(normalized))
        if found:
            return (*found, "exact")
        if skeleton is not None and skeleton != normalized:
            found = self._lookalike.get(match_key(skeleton))
            if found:
                return (*found, "lookalike")
        return None


DEFAULT_TABLE = KeywordTable(DEFAULT_KEYWORDS.items())


# --- the engine --------------------------------------------------------------------------------


def classify(
    text: str,
    autoresponse_type: str | None = None,
    table: KeywordTable = DEFAULT_TABLE,
    tables: Sequence[KeywordTable] | None = None,
) -> Verdict:
    """Decide what an inbound text means for consent.

    ``tables`` are looked up in order (custom configurations for the profile and country,
    then ``*``, then the defaults); without it, ``table`` alone is used.
    """
    normalized = normalize(text)
    if autoresponse_type:
        op = OP_ALIASES.get(autoresponse_type.strip().casefold())
        if op is not None:
            return Verdict(op, Source.TELNYX, autoresponse_type, normalized, "autoresponse_type")
    skeleton = lookalike_skeleton(text)
    for candidate in tables if tables is not None else (table,):
        match = candidate.lookup(normalized, skeleton)
        if match is not None:
            op, keyword, rule = match
            shown = skeleton if rule == "lookalike" else normalized
            return Verdict(op, Source.KEYWORD, keyword, shown, rule)
    found = find_intent(skeleton)
    if found is None:
        return Verdict(None, None, None, normalized, None)
    if found.per_se:  # "I opt out", "STOP NOW!!": a revocation word said plainly
        return Verdict(STOP, Source.KEYWORD, found.keyword, normalized, found.rule)
    return Verdict(POSSIBLE_OPT_OUT, Source.INTENT, found.keyword, normalized, found.rule)
