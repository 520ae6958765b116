"""The intent tier of the keyword engine: what a text that is not a keyword asks for.

Pure: words in, a finding out. A text is read clause by clause (split at . ! ? ;). In each
clause an opt-out verb (stop, quit, end, cancel, unsubscribe, revoke, opt out, remove,
delete, take … off) is judged by three things:

- **negation** right before it ("don't unsubscribe me", "I can't stop laughing"): it does
  not count;
- **its object**, the words after it once fillers and determiners are skipped:
  - the messaging ("these texts", "sending me these", "me from this list", "my number",
    "it") → a possible opt-out;
  - nothing at all ("stop", "stop now please") → see the subject below;
  - anything else ("my order", "my appointment", "smoking", "by the store") → ordinary;
- **its subject**, the words before it, when it has no object:
  - only a subject and fillers ("I", "please", "hey", "I hereby") → a per-se revocation
    word (FCC 24-24: stop, quit, end, cancel, unsubscribe, revoke, opt out; and STOPALL)
    stands as an opt-out;
  - a wish or a question ("I want to", "how do I", "can you") → a possible opt-out;
  - anything else ("see you at the bus stop", "the end") → ordinary.

A text whose every clause is a per-se word with only a subject and fillers is an opt-out
(``stop``, rule ``per_se``): "I opt out", "I revoke consent", "STOPALL NOW", "Thanks. STOP".
Any other clause that fires makes the text a possible opt-out, and so do a few fixed
phrases that have no opt-out verb ("leave me alone", "don't text me", "wrong number"),
unless negated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# The revocation words the FCC's order 24-24 makes valid per se, and Telnyx's STOPALL,
# as the keyword the verdict names.
PER_SE_VERBS = {
    "stop": "STOP",
    "stopall": "STOPALL",
    "quit": "QUIT",
    "end": "END",
    "cancel": "CANCEL",
    "unsubscribe": "UNSUBSCRIBE",
    "revoke": "REVOKE",
    "optout": "OPT OUT",
}
# Verbs that ask for no more messages only with the messaging as their object.
OTHER_VERBS = {"remove": "REMOVE", "delete": "DELETE", "takeoff": "TAKE OFF"}
# Verbs that come in two parts around their object: "opt me out", "take my number off".
_SPLIT_VERBS = {"opt": ("out", "optout"), "take": ("off", "takeoff")}

# Words that add nothing to a clause's meaning: politeness, emphasis, reactions.
FILLERS = frozenset(
    "please pls plz now thanks thank thankyou thx ty asap already ok okay lol omg seriously"
    " again immediately really just kindly hereby hey hi hello yes yeah no so all anymore"
    " enough consent _filler_".split()
)
_FILLER_PHRASES = re.compile(
    r"\b(?:thank you|right now|for real|i said|once and for all|at once|any more|any longer"
    r"|no longer)\b"
)
# Who speaks: with only these and fillers before it, a per-se word is a revocation.
SUBJECTS = frozenset("i we i'm im i'll".split())
# A wish or a question before a verb without an object: a possible opt-out.
WISHES = frozenset(
    "want wanna wish like would i'd id need to how do does can could may you u will gonna"
    " going let me why won't wont".split()
)
# Skipped on the way to the object's first content word.
DETERMINERS = frozenset(
    "the a an my your our all any of from on for with these those this that it them".split()
)
# Determiners that stand for the messages themselves when nothing follows them ("stop it").
PRONOUNS = frozenset("it this these that those them".split())
# What "the messaging" is, as an object.
MESSAGING = frozenset(
    "text texts texting message messages messaging msg msgs sms mms spam spamming"
    " notification notifications alert alerts reminder reminders email emails emailing"
    " calls calling list lists subscription subscriptions number phone name info"
    " information details data contact contacting sending send me us everything marketing"
    " promotions promos updates bothering harassing".split()
)
# A word right before the verb that makes it a noun: "the end", "the revoke policy".
_NOUN_MARKERS = frozenset("the a an my your our their his her its this that".split())
# "do not" and "does not" end in "not".
NEGATIONS = frozenset(
    "don't dont not never can't cant cannot won't wont wouldn't shouldn't didn't doesn't"
    " isn't".split()
)
# Skipped between a negation and its verb: "don't ever", "don't just".
_NEGATION_GAP = frozenset("ever just really please".split())

_CONTACT = r"(?:text|txt|message|msg|contact|call|email|sms|spam|bother)(?:s|ing|ed)?"
# Phrases without an opt-out verb that ask for no more messages.
PHRASES: Sequence[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern))
    for name, pattern in (
        (
            "don't text me",
            r"\b(?:don'?t|do not|never|no)\s+(?:ever\s+)?"
            + _CONTACT
            + r"\s+(?:me|us|this number)\b",
        ),
        ("no more texts", r"\bno\s+more\s+(?:texts?|messages?|sms|spam|msgs?)\b"),
        (
            "don't want these texts",
            r"\b(?:don'?t|do not|no longer)\s+(?:want|need)\s+(?:to\s+(?:get|receive)\s+)?"
            r"(?:any\s+more\s+|more\s+)?(?:these|the|your|any|those)?\s*"
            r"(?:texts?|messages?|msgs?|sms|notifications?|alerts?|it|them|this|these)\b",
        ),
        ("leave me alone", r"\bleave\s+me\s+alone\b"),
        ("lose my number", r"\blose\s+(?:my|this)\s+number\b"),
        ("wrong number", r"\bwrong\s+(?:number|person)\b"),
        ("not interested", r"\bnot\s+interested\b"),
    )
]

_WHITESPACE = re.compile(r"\s+")
_CLAUSE_ENDS = re.compile(r"[.!?;¡¿…]+")


PER_SE = "per_se"  # the rule of a text that is an opt-out, not only a possible one


@dataclass(frozen=True)
class Finding:
    """What the intent tier found: an opt-out (``stop``) or a possible one."""

    per_se: bool  # True: every clause is a per-se word with only a subject and fillers
    rule: str  # per_se | verb_with_messages | verb_alone | phrase
    keyword: str  # the verb as the verdict names it, or the phrase


@dataclass(frozen=True)
class _Use:
    """One opt-out verb in a clause, and how it is used."""

    rule: str | None  # what it makes of the clause, None when it means nothing
    keyword: str
    per_se_clause: bool


def _plain(text: str) -> str:
    """Inner punctuation becomes space: "stop, please" reads as "stop please"."""
    cleaned = "".join(
        ch if ch.isalnum() or ch in "'-" or ch.isspace() else " " for ch in text
    ).replace("’", "'")
    return _WHITESPACE.sub(" ", cleaned).strip()


def words_of(text: str) -> list[str]:
    """A clause's words, with each multi-word filler ("thank you") made one filler."""
    words = _FILLER_PHRASES.sub(" _filler_ ", _plain(text)).split()
    return [word.strip("-'") for word in words if word.strip("-'")]


def _verbs(words: Sequence[str]) -> Iterator[tuple[int, str, list[str]]]:
    """(position, verb, the words of its object) for each opt-out verb in a clause."""
    for index, word in enumerate(words):
        verb = word.replace("-", "")
        if verb in PER_SE_VERBS or verb in OTHER_VERBS:
            yield index, verb, list(words[index + 1 :])
        elif word in _SPLIT_VERBS:
            particle, joined = _SPLIT_VERBS[word]
            # The particle within three words: "opt out", "opt me out", "take my number off".
            for gap in range(1, 4):
                if index + gap < len(words) and words[index + gap] == particle:
                    object_words = [*words[index + 1 : index + gap], *words[index + gap + 1 :]]
                    yield index, joined, object_words
                    break


def _ends_negated(before: Sequence[str]) -> bool:
    """Whether the words before a verb or phrase end in a negation ("don't", "don't ever")."""
    last = len(before) - 1
    while last >= 0 and before[last] in _NEGATION_GAP:
        last -= 1
    return last >= 0 and before[last] in NEGATIONS


def _object(words: Sequence[str]) -> str:
    """``messaging``, ``none`` or ``other``: what the words after a verb are about."""
    pronoun = False
    for word in words:
        if word in FILLERS or word.replace("-", "") in PER_SE_VERBS:  # "stop, stop!"
            continue
        if word in DETERMINERS:
            pronoun = pronoun or word in PRONOUNS
            continue
        return "messaging" if word in MESSAGING else "other"
    return "messaging" if pronoun else "none"


def _read_verb(words: Sequence[str], index: int, verb: str, object_words: list[str]) -> _Use:
    keyword = PER_SE_VERBS.get(verb) or OTHER_VERBS[verb]
    if _ends_negated(words[:index]) or (index and words[index - 1] in _NOUN_MARKERS):
        return _Use(None, keyword, False)
    about = _object(object_words)
    if about == "messaging":
        return _Use("verb_with_messages", keyword, False)
    if about == "other":
        return _Use(None, keyword, False)
    subject = [
        word
        for word in words[:index]
        if word not in FILLERS and word.replace("-", "") not in PER_SE_VERBS
    ]
    if all(word in SUBJECTS for word in subject):
        return _Use("verb_alone", keyword, per_se_clause=verb in PER_SE_VERBS)
    if all(word in SUBJECTS or word in WISHES for word in subject):
        return _Use("verb_alone", keyword, False)
    return _Use(None, keyword, False)


def _phrase(text: str) -> str | None:
    for name, pattern in PHRASES:
        for match in pattern.finditer(text):
            if not _ends_negated(text[: match.start()].split()):  # "don't leave me alone"
                return name
    return None


def find_intent(text: str) -> Finding | None:
    """Read a normalised text (spec §4) for opt-out intent; None when it has none."""
    uses: list[_Use] = []
    content_clauses = per_se_clauses = 0
    for clause in _CLAUSE_ENDS.split(text):
        words = words_of(clause)
        if not [word for word in words if word not in FILLERS]:
            continue  # "thanks", "ok": no content either way
        content_clauses += 1
        clause_uses = [_read_verb(words, *found) for found in _verbs(words)]
        uses.extend(use for use in clause_uses if use.rule)
        # A clause is per se when its one opt-out verb stands alone with its subject.
        if len(clause_uses) >= 1 and all(use.per_se_clause for use in clause_uses):
            per_se_clauses += 1
    if uses and per_se_clauses == content_clauses:
        return Finding(True, PER_SE, uses[0].keyword)
    if uses:
        return Finding(False, uses[0].rule or "", uses[0].keyword)
    phrase = _phrase(_plain(text))
    return Finding(False, "phrase", phrase) if phrase else None
