"""The keyword engine: a table of realistic inbound texts, and properties of normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.consent.keyword_configs import KeywordEngine, parse_configs
from app.consent.keywords import DEFAULT_KEYWORDS, classify, lookalike_skeleton, normalize
from tests.keyword_configs import KEYWORDS, VIP_PROFILE

US, MX, CA = "US", "MX", "CA"
PROFILE = "main-profile"
configs, problems = parse_configs(KEYWORDS)
assert not problems, problems
ENGINE = KeywordEngine(configs)

S, ST, H, P = "stop", "start", "help", "possible_opt_out"
# (text, country, autoresponse_type, expected op, expected rule)
TABLE: list[tuple[str, str, str | None, str | None, str | None]] = [
    # Telnyx's verdict comes first, in any case
    ("STOP", US, "STOP", S, "autoresponse_type"),
    ("stop", US, "stop", S, "autoresponse_type"),
    ("Start", US, "START", ST, "autoresponse_type"),
    ("UNSTOP", US, "Start", ST, "autoresponse_type"),
    ("help", US, "HELP", H, "autoresponse_type"),
    ("info", US, "INFO", H, "autoresponse_type"),
    ("PARAR", MX, "STOP", S, "autoresponse_type"),
    ("whatever Telnyx says", US, "stop", S, "autoresponse_type"),
    ("STOP", US, "SOMETHING_NEW", S, "exact"),  # unknown value: our own engine decides
    ("hello", US, "", None, None),
    # Telnyx's default keywords, without autoresponse_type
    ("STOP", US, None, S, "exact"),
    ("stop", US, None, S, "exact"),
    ("Stop", US, None, S, "exact"),
    ("sToP", US, None, S, "exact"),
    ("STOPALL", US, None, S, "exact"),
    ("stop all", US, None, S, "exact"),
    ("Stop   All", US, None, S, "exact"),
    ("stop-all", US, None, S, "exact"),
    ("UNSUBSCRIBE", US, None, S, "exact"),
    ("Unsubscribe.", US, None, S, "exact"),
    ("cancel", US, None, S, "exact"),
    ("END", US, None, S, "exact"),
    ("quit", US, None, S, "exact"),
    ("QUIT!", US, None, S, "exact"),
    ("START", US, None, ST, "exact"),
    ("start", US, None, ST, "exact"),
    ("unstop", US, None, ST, "exact"),
    ("Un-stop", US, None, ST, "exact"),
    ("HELP", US, None, H, "exact"),
    ("help?", US, None, H, "exact"),
    ("Help!!!", US, None, H, "exact"),
    # FCC revocation words Telnyx does not flag
    ("REVOKE", US, None, S, "exact"),
    ("revoke", US, None, S, "exact"),
    ("Revoke.", US, None, S, "exact"),
    ("OPT OUT", US, None, S, "exact"),
    ("opt out", US, None, S, "exact"),
    ("Opt-Out", US, None, S, "exact"),
    ("optout", US, None, S, "exact"),
    ("OPT  -  OUT", US, None, S, "exact"),
    ("opt_out", US, None, S, "exact"),
    # Punctuation, emoji, spacing and invisible characters around a keyword
    ("Stop.", US, None, S, "exact"),
    ("STOP!!", US, None, S, "exact"),
    ("  stop  ", US, None, S, "exact"),
    ("\tSTOP\n", US, None, S, "exact"),
    ('"stop"', US, None, S, "exact"),
    ("(STOP)", US, None, S, "exact"),
    ("stop 🛑", US, None, S, "exact"),
    ("🛑🛑 STOP 🛑🛑", US, None, S, "exact"),
    ("✋ stop", US, None, S, "exact"),
    ("STOP 👍🏽", US, None, S, "exact"),
    ("stop ❤️", US, None, S, "exact"),
    ("S\u200bTOP", US, None, S, "exact"),
    ("\ufeffSTOP", US, None, S, "exact"),
    ("ST\u200dOP", US, None, S, "exact"),
    ("\u202estop", US, None, S, "exact"),
    ("stop\u00a0all", US, None, S, "exact"),
    ("...stop...", US, None, S, "exact"),
    ("¡STOP!", US, None, S, "exact"),
    # Full-width, styled and look-alike letters
    ("ＳＴＯＰ", US, None, S, "exact"),
    ("ｓｔｏｐ", US, None, S, "exact"),
    ("𝐒𝐓𝐎𝐏", US, None, S, "exact"),
    ("𝓈𝓉𝑜𝓅", US, None, S, "exact"),
    ("ⓈⓉⓄⓅ", US, None, S, "exact"),
    ("ЅТОР", US, None, S, "lookalike"),  # all Cyrillic
    ("SТОР", US, None, S, "lookalike"),  # Latin S, Cyrillic ТОР
    ("ѕтор", US, None, S, "lookalike"),
    ("ЅТАRТ", US, None, ST, "lookalike"),
    ("ΗΕLΡ", US, None, H, "lookalike"),  # Greek
    ("ЕND", US, None, S, "lookalike"),
    ("QUІТ", US, None, S, "lookalike"),
    ("RЕVОКЕ", US, None, S, "lookalike"),
    ("Стоп", US, None, None, None),  # genuine Russian: not a look-alike of a keyword
    # Accents
    ("stóp", US, None, S, "exact"),
    ("STÖP", US, None, S, "exact"),
    ("Unsubscribé", US, None, S, "exact"),
    # Custom configurations by the sender's country (KEYWORDS_FILE)
    ("parar", MX, None, S, "exact"),
    ("PARAR", MX, None, S, "exact"),
    ("Parar.", MX, None, S, "exact"),
    ("baja", MX, None, S, "exact"),
    ("cancelar", MX, None, S, "exact"),
    ("inicio", MX, None, ST, "exact"),
    ("ALTA", MX, None, ST, "exact"),
    ("ayuda", MX, None, H, "exact"),
    ("STOP", MX, None, S, "exact"),  # defaults still apply in Mexico
    ("parar", US, None, None, None),  # Spanish keywords are for Mexican numbers only
    ("inicio", US, None, None, None),
    ("arrêt", CA, None, S, "exact"),
    ("ARRET", CA, None, S, "exact"),
    ("arreter", CA, None, S, "exact"),
    ("désabonner", CA, None, S, "exact"),
    ("arret", US, None, None, None),
    ("info", US, None, H, "exact"),  # op info is help
    ("AIDE", CA, None, H, "exact"),
    ("hours", US, None, "hours", "exact"),  # a custom op
    ("Horario", MX, None, "hours", "exact"),
    ("goodbye", US, None, None, None),  # configured for the VIP profile only
    # INFO is a help keyword by default (CTIA)
    ("INFO", US, None, H, "exact"),
    ("Info?", US, None, H, "exact"),
    # A per-se word (FCC 24-24) with only a subject or fillers: an opt-out
    ("I opt out", US, None, S, "per_se"),
    ("I revoke consent", US, None, S, "per_se"),
    ("Revoke consent", US, None, S, "per_se"),
    ("I hereby revoke my consent.", US, None, S, "per_se"),
    ("I unsubscribe", US, None, S, "per_se"),
    ("I quit", US, None, S, "per_se"),
    ("STOPALL NOW", US, None, S, "per_se"),
    ("Stopall please", US, None, S, "per_se"),
    ("stop please", US, None, S, "per_se"),
    ("Please STOP", US, None, S, "per_se"),
    ("STOP NOW!!!", US, None, S, "per_se"),
    ("lol stop", US, None, S, "per_se"),
    ("STOP. STOP. STOP.", US, None, S, "per_se"),
    ("Stop! Stop! Stop!", US, None, S, "per_se"),
    ("STOP STOP", US, None, S, "per_se"),
    ("pls unsubscribe", US, None, S, "per_se"),
    ("opt out please", US, None, S, "per_se"),
    ("OPT-OUT now", US, None, S, "per_se"),
    ("cancel please", US, None, S, "per_se"),
    ("end, thank you", US, None, S, "per_se"),
    ("Thanks. STOP", US, None, S, "per_se"),
    ("No, stop", US, None, S, "per_se"),
    ("Enough, stop", US, None, S, "per_se"),
    ("stop right now", US, None, S, "per_se"),
    ("I said STOP", US, None, S, "per_se"),
    ("Please, unsubscribe. Thank you.", US, None, S, "per_se"),
    ("stop all please", US, None, S, "per_se"),
    ("Рlease SТОР", US, None, S, "per_se"),  # look-alikes around a per-se word
    # An opt-out verb whose object is the messaging: a possible opt-out
    ("please stop texting me", US, None, P, "verb_with_messages"),
    ("Please stop texting me, thanks", US, None, P, "verb_with_messages"),
    ("stop sending me these messages", US, None, P, "verb_with_messages"),
    ("can you stop messaging me", US, None, P, "verb_with_messages"),
    ("Remove me from this list", US, None, P, "verb_with_messages"),
    ("take me off your list", US, None, P, "verb_with_messages"),
    ("unsubscribe me please", US, None, P, "verb_with_messages"),
    ("opt me out", US, None, P, "verb_with_messages"),
    ("stop it", US, None, P, "verb_with_messages"),
    ("Рlease stop tеxting me", US, None, P, "verb_with_messages"),  # look-alikes in a phrase
    ("I'd like to opt out of these texts", US, None, P, "verb_with_messages"),
    ("Stop these texts", US, None, P, "verb_with_messages"),
    ("Stop the messages please", US, None, P, "verb_with_messages"),
    ("quit sending me these", US, None, P, "verb_with_messages"),
    ("remove my name", US, None, P, "verb_with_messages"),
    ("delete my number", US, None, P, "verb_with_messages"),
    ("take my number off your list", US, None, P, "verb_with_messages"),
    ("Cancel my subscription", US, None, P, "verb_with_messages"),
    ("End this", US, None, P, "verb_with_messages"),
    ("unsubscribe from this list", US, None, P, "verb_with_messages"),
    ("Unsubscribe me from all lists", US, None, P, "verb_with_messages"),
    ("stop spamming me", US, None, P, "verb_with_messages"),
    ("Stop sending", US, None, P, "verb_with_messages"),
    ("stop calling me", US, None, P, "verb_with_messages"),
    ("Why won't you stop texting me", US, None, P, "verb_with_messages"),
    ("cancel my order and stop texting me", US, None, P, "verb_with_messages"),
    ("Stop it already", US, None, P, "verb_with_messages"),
    (
        "I have told you three times, YOU ARE STILL CONTACTING ME. STOP IT!!",
        US,
        None,
        P,
        "verb_with_messages",
    ),
    ("Stop the marketing texts", US, None, P, "verb_with_messages"),
    ("please remove me", US, None, P, "verb_with_messages"),
    # An opt-out verb alone after a wish or a question, or in a longer text
    ("how do I unsubscribe?", US, None, P, "verb_alone"),
    ("I want to opt out", US, None, P, "verb_alone"),
    ("I wish to unsubscribe", US, None, P, "verb_alone"),
    ("Can I unsubscribe", US, None, P, "verb_alone"),
    ("you can stop now", US, None, P, "verb_alone"),
    ("Please remove", US, None, P, "verb_alone"),
    ("who is this? stop", US, None, P, "verb_alone"),
    ("Hey, please stop! I do not want it anymore", US, None, P, "verb_alone"),
    ("I would like to cancel", US, None, P, "verb_alone"),
    # Phrases without an opt-out verb
    ("don't text me again", US, None, P, "phrase"),
    ("Do not contact me", US, None, P, "phrase"),
    ("never text me again", US, None, P, "phrase"),
    ("no more texts please", US, None, P, "phrase"),
    ("leave me alone", US, None, P, "phrase"),
    ("lose my number", US, None, P, "phrase"),
    ("wrong number", US, None, P, "phrase"),
    ("not interested", US, None, P, "phrase"),
    ("I am not interested", US, None, P, "phrase"),
    ("I don't want these texts anymore", US, None, P, "phrase"),
    ("I no longer want to receive these messages", US, None, P, "phrase"),
    # An object that is something else, or a negation: ordinary
    ("I want to cancel my order", US, None, None, None),
    ("How do I cancel my appointment?", US, None, None, None),
    ("I need to cancel my reservation", US, None, None, None),
    ("I want to quit smoking", US, None, None, None),
    ("Please don't unsubscribe me", US, None, None, None),
    ("Don't opt me out", US, None, None, None),
    ("don't leave me alone", US, None, None, None),
    ("don't ever stop texting me", US, None, None, None),
    ("Never stop sending me deals!", US, None, None, None),
    ("Stop & Shop has a sale", US, None, None, None),
    ("Stop the bleeding", US, None, None, None),
    ("the party will stop at 10", US, None, None, None),
    ("don't stop believing", US, None, None, None),
    ("I can't end this relationship", US, None, None, None),
    ("I'll stop by tomorrow", US, None, None, None),
    ("please stop by the office", US, None, None, None),
    ("we need to end the meeting early", US, None, None, None),
    ("can we end the call", US, None, None, None),
    ("I cancelled my order", US, None, None, None),
    ("Quitting time!", US, None, None, None),
    ("stop light is broken", US, None, None, None),
    ("Revoke my access card", US, None, None, None),
    ("the unsubscribe link doesn't work", US, None, None, None),
    ("Can you cancel my 3pm?", US, None, None, None),
    # Ordinary texts that must stay ordinary
    ("What time do you open on Saturday?", US, None, None, None),
    ("We have got to STOP this bill", US, None, None, None),
    ("Stop by the store at 5", US, None, None, None),
    ("I can't stop laughing", US, None, None, None),
    ("don't stop the deals coming", US, None, None, None),
    ("End of the day works for me", US, None, None, None),
    ("the end", US, None, None, None),
    ("cancel my appointment", US, None, None, None),
    ("Can I cancel my order?", US, None, None, None),
    ("start time is 9am", US, None, None, None),
    ("Thanks!", US, None, None, None),
    ("ok", US, None, None, None),
    ("Yes", US, None, None, None),
    ("", US, None, None, None),
    ("👍", US, None, None, None),
    ("HELP me find my order", US, None, None, None),
    ("stopwatch", US, None, None, None),
    ("Nonstop flights", US, None, None, None),
    ("What's the revoke policy", US, None, None, None),
    ("see you at the bus stop", US, None, None, None),
    ("¿Cuál es el horario de hoy?", MX, None, None, None),
]


def test_table_has_at_least_100_texts() -> None:
    assert len(TABLE) >= 100


@pytest.mark.parametrize(("text", "country", "autoresponse", "op", "rule"), TABLE)
def test_verdict_of_realistic_texts(
    text: str, country: str, autoresponse: str | None, op: str | None, rule: str | None
) -> None:
    verdict = ENGINE.classify(text, autoresponse, PROFILE, country)
    assert (verdict.op, verdict.rule) == (op, rule), verdict


def test_profile_specific_configuration_applies_to_that_profile_only() -> None:
    assert ENGINE.classify("Goodbye", None, VIP_PROFILE, US).op == "stop"
    assert ENGINE.classify("Goodbye", None, PROFILE, US).op is None


def test_verdict_names_the_configured_keyword_and_the_normalised_text() -> None:
    verdict = ENGINE.classify("  ARRÊT!! ", None, PROFILE, CA)
    assert (verdict.keyword, verdict.normalized, verdict.source) == ("ARRÊT", "arret", "keyword")
    lookalike = ENGINE.classify("ЅТОР", None, PROFILE, US)
    assert (lookalike.keyword, lookalike.normalized) == ("STOP", "stop")


# --- properties ---------------------------------------------------------------------------


@given(st.text())
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.text())
def test_lookalike_skeleton_is_idempotent(text: str) -> None:
    once = lookalike_skeleton(text)
    assert lookalike_skeleton(once) == once


ALL_KEYWORDS = [(op, word) for op, words in DEFAULT_KEYWORDS.items() for word in words]
NOISE = st.text(alphabet=" \t\n.!?,;:\"'()*~…🛑✋👍❤️🙏\u200b\u200d\ufeff", max_size=6)


@given(
    keyword=st.sampled_from(ALL_KEYWORDS),
    before=NOISE,
    after=NOISE,
    case=st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_case_spacing_and_punctuation_noise_never_change_a_keyword_verdict(
    keyword: tuple[str, str], before: str, after: str, case: list[bool]
) -> None:
    op, word = keyword
    cased = "".join(c.upper() if up else c.lower() for c, up in zip(word, case * 3, strict=False))
    verdict = classify(before + cased + after)
    assert (verdict.op, verdict.rule) == (op, "exact")


@given(st.text(max_size=200))
def test_classify_never_crashes_and_intent_only_ever_means_possible_opt_out(text: str) -> None:
    verdict = ENGINE.classify(text, None, PROFILE, US)
    assert verdict.op in (None, "stop", "start", "help", "hours", "possible_opt_out")
    assert (verdict.source == "intent") == (verdict.op == "possible_opt_out")


# What people ask not to happen: an intent phrase, negated.
INTENT_PHRASES = [
    "stop",
    "opt out",
    "unsubscribe",
    "stop texting me",
    "unsubscribe me",
    "opt me out",
    "remove me from this list",
    "take me off your list",
    "stop sending me these messages",
    "cancel my subscription",
    "quit sending me these",
    "end these texts",
    "leave me alone",
    "lose my number",
    "revoke my consent",
]
# Opt-outs of every family: default stop keywords, per-se words with a subject, verbs with
# the messaging as object, wishes, and fixed phrases.
OPT_OUTS = (
    [word for op, word in ALL_KEYWORDS if op == "stop"]
    + INTENT_PHRASES
    + [
        "I opt out",
        "I revoke consent",
        "I want to opt out",
        "no more texts",
        "do not contact me",
        "wrong number",
        "stop it",
    ]
)
AROUND = st.lists(
    st.sampled_from(
        [
            "please",
            "now",
            "!!",
            "pls",
            "right now",
            ".",
            "!",
            "?",
            ",",
            "thanks",
            "🙏",
            "...",
            "lol",
            "asap",
        ]
    ),
    max_size=3,
)


@given(opt_out=st.sampled_from(OPT_OUTS), before=AROUND, after=AROUND)
def test_please_now_and_punctuation_around_an_opt_out_never_make_it_ordinary(
    opt_out: str, before: list[str], after: list[str]
) -> None:
    verdict = classify(" ".join([*before, opt_out, *after]))
    assert verdict.op in ("stop", "possible_opt_out"), verdict


@given(
    negation=st.sampled_from(["don't", "do not", "please don't", "never", "dont", "Don't ever"]),
    phrase=st.sampled_from(INTENT_PHRASES),
    after=AROUND,
)
def test_dont_before_an_intent_phrase_never_makes_it_an_opt_out(
    negation: str, phrase: str, after: list[str]
) -> None:
    verdict = classify(" ".join([negation, phrase, *after]))
    assert verdict.op is None, verdict
