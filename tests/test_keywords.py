"""The keyword engine: a table of realistic inbound texts, and properties of normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.keyword_configs import KEYWORDS, VIP_PROFILE
from workers.autoresp import KeywordEngine, parse_configs
from workers.keywords import DEFAULT_KEYWORDS, classify, lookalike_skeleton, normalize

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
    # Intent: opt-out wording inside a longer text
    ("please stop texting me", US, None, P, "intent"),
    ("Please stop texting me, thanks", US, None, P, "intent"),
    ("stop sending me these messages", US, None, P, "intent"),
    ("can you stop messaging me", US, None, P, "intent"),
    ("Remove me from this list", US, None, P, "intent"),
    ("take me off your list", US, None, P, "intent"),
    ("unsubscribe me please", US, None, P, "intent"),
    ("opt me out", US, None, P, "intent"),
    ("don't text me again", US, None, P, "intent"),
    ("Do not contact me", US, None, P, "intent"),
    ("no more texts please", US, None, P, "intent"),
    ("leave me alone", US, None, P, "intent"),
    ("lose my number", US, None, P, "intent"),
    ("wrong number", US, None, P, "intent"),
    ("how do I unsubscribe?", US, None, P, "intent"),
    ("I want to opt out", US, None, P, "intent"),
    ("not interested", US, None, P, "intent"),
    ("stop please", US, None, P, "intent"),
    ("Please STOP", US, None, P, "intent"),
    ("STOP NOW!!!", US, None, P, "intent"),
    ("stop it", US, None, P, "intent"),
    ("lol stop", US, None, P, "intent"),
    ("STOP. STOP. STOP.", US, None, P, "intent"),
    ("pls unsubscribe", US, None, P, "intent"),
    ("Рlease stop tеxting me", US, None, P, "intent"),  # look-alikes inside a phrase
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
    assert (verdict.rule == "intent") == (verdict.op == "possible_opt_out")
