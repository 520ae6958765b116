"""Custom keyword configurations: Telnyx's ``autoresp_configs``, their limits, and the engine
that picks the right ones for a message (messaging profile, then the sender's country).

Pure: no Flask, no Celery, no database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers

from app.consent.keywords import (
    DEFAULT_TABLE,
    HELP,
    OP_ALIASES,
    START,
    STOP,
    TELNYX_DEFAULT_KEYWORDS,
    KeywordTable,
    Verdict,
    classify,
    match_key,
    normalize,
)

MAX_KEYWORDS = 20
MIN_RESPONSE_CHARS = 20
ANY_COUNTRY = "*"
# Telnyx: START, STOP and HELP cannot be reassigned to another op.
RESERVED = {"start": START, "stop": STOP, "help": HELP}
# Ours, stricter than Telnyx: a word the FCC makes a valid revocation per se must never mean
# anything but stop (mapping END to a custom "start" would turn opt-outs into opt-ins).
FCC_PER_SE = ("stop", "quit", "end", "revoke", "opt out", "cancel", "unsubscribe")
_OP_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,39}$")


class KeywordsFileError(ValueError):
    """An unusable configuration file; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{source}: {len(problems)} problem(s): " + "; ".join(problems))


@dataclass(frozen=True)
class AutorespConfig:
    op: str  # as configured, lower case: start, stop, help, info or a custom name
    keywords: tuple[str, ...]
    resp_text: str
    country_code: str  # ISO 3166-1 alpha-2, upper case, or "*"
    messaging_profile_id: str | None = None  # None: every profile
    id: str | None = None  # Telnyx's id, when pulled from the API

    @property
    def canonical_op(self) -> str:
        return OP_ALIASES.get(self.op, self.op)

    def as_telnyx_body(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "keywords": list(self.keywords),
            "resp_text": self.resp_text,
            "country_code": self.country_code,
        }

    def as_file_entry(self) -> dict[str, Any]:
        entry = self.as_telnyx_body()
        if self.messaging_profile_id:
            entry["messaging_profile_id"] = self.messaging_profile_id
        return entry


def _describe(index: int, raw: Any) -> str:
    if isinstance(raw, dict):
        return f"config {index} (op {raw.get('op')!r}, country {raw.get('country_code')!r})"
    return f"config {index}"


def parse_configs(document: Any) -> tuple[list[AutorespConfig], list[str]]:
    """Read a list of configuration objects; return the valid ones and one line per problem."""
    if not isinstance(document, list):
        return [], ["the file must hold a JSON list of configuration objects"]
    configs: list[AutorespConfig] = []
    problems: list[str] = []
    for index, raw in enumerate(document, start=1):
        where = _describe(index, raw)
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a JSON object")
            continue
        found: list[str] = []
        op = raw.get("op")
        if not isinstance(op, str) or not _OP_NAME.match(op.strip().lower()):
            found.append("op must be start, stop, help (or info) or a custom name like 'promo'")
            op = ""
        op = op.strip().lower()
        canonical = OP_ALIASES.get(op, op)
        keywords = raw.get("keywords")
        if not isinstance(keywords, list) or not keywords:
            found.append("keywords must be a non-empty list")
            keywords = []
        elif len(keywords) > MAX_KEYWORDS:
            found.append(f"has {len(keywords)} keywords; Telnyx allows at most {MAX_KEYWORDS}")
        clean: list[str] = []
        for keyword in keywords:
            if not isinstance(keyword, str) or not normalize(keyword):
                found.append(f"keyword {keyword!r} is empty or not text")
                continue
            clean.append(keyword.strip())
            key = match_key(normalize(keyword))
            for word, reserved_op in RESERVED.items():
                if key == match_key(word) and canonical != reserved_op:
                    found.append(
                        f"keyword {keyword!r} is reserved for op {reserved_op}; "
                        f"Telnyx does not let {word.upper()} be reassigned"
                    )
            if (
                canonical != STOP
                and key in {match_key(w) for w in FCC_PER_SE}
                and (key not in {match_key(w) for w in RESERVED})
            ):
                found.append(
                    f"keyword {keyword!r} revokes consent per se (FCC 24-24) and may only "
                    "belong to op stop"
                )
        resp_text = raw.get("resp_text")
        if not isinstance(resp_text, str):
            found.append("resp_text must be text")
            resp_text = ""
        elif canonical in (START, STOP, HELP) and len(resp_text.strip()) < MIN_RESPONSE_CHARS:
            found.append(
                f"resp_text is {len(resp_text.strip())} characters; {canonical} responses need "
                f"at least {MIN_RESPONSE_CHARS}"
            )
        country = raw.get("country_code")
        if not isinstance(country, str) or not (
            country == ANY_COUNTRY or country.upper() in phonenumbers.SUPPORTED_REGIONS
        ):
            found.append(f"country_code {country!r} is not an ISO 3166-1 alpha-2 code or '*'")
            country = ANY_COUNTRY
        profile = raw.get("messaging_profile_id")
        if profile is not None and (not isinstance(profile, str) or not profile.strip()):
            found.append("messaging_profile_id, when given, must be a non-empty string")
            profile = None
        if found:
            problems.extend(f"{where}: {problem}" for problem in found)
            continue
        configs.append(
            AutorespConfig(
                op=op,
                keywords=tuple(clean),
                resp_text=resp_text,
                country_code=country.upper() if country != ANY_COUNTRY else ANY_COUNTRY,
                messaging_profile_id=profile.strip() if profile else None,
                id=raw.get("id") if isinstance(raw.get("id"), str) else None,
            )
        )
    problems.extend(_clashes(configs))
    return configs, problems


def _clashes(configs: Iterable[AutorespConfig]) -> list[str]:
    """The same keyword given two different ops within one (profile, country) scope."""
    seen: dict[tuple[str | None, str, str], str] = {}
    problems = []
    for config in configs:
        for keyword in config.keywords:
            scope = (
                config.messaging_profile_id,
                config.country_code,
                match_key(normalize(keyword)),
            )
            other = seen.setdefault(scope, config.canonical_op)
            if other != config.canonical_op:
                problems.append(
                    f"keyword {keyword!r} is given to both op {other} and op {config.op} "
                    f"for country {config.country_code}"
                )
    return problems


def load_keywords_file(path: Path) -> list[AutorespConfig]:
    """Read and validate a KEYWORDS_FILE; raise KeywordsFileError with every problem."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeywordsFileError(str(path), [f"cannot be read: {exc.strerror}"]) from None
    except json.JSONDecodeError as exc:
        raise KeywordsFileError(str(path), [f"is not JSON: {exc}"]) from None
    configs, problems = parse_configs(document)
    if problems:
        raise KeywordsFileError(str(path), problems)
    return configs


class KeywordEngine:
    """Classifies texts with the configurations that apply to a message."""

    def __init__(self, configs: Sequence[AutorespConfig] = ()) -> None:
        self.configs = tuple(configs)

    def _scoped(self, profile: str | None, country: str | None) -> list[list[AutorespConfig]]:
        # Country-specific before "*"; within each, the profile's own before every profile's.
        groups = []
        for wanted_country in (country, ANY_COUNTRY):
            if wanted_country is None:
                continue
            for wanted_profile in (profile, None):
                group = [
                    c
                    for c in self.configs
                    if c.country_code == wanted_country and c.messaging_profile_id == wanted_profile
                ]
                if group:
                    groups.append(group)
        return groups

    @lru_cache(maxsize=1024)  # noqa: B019 - engines live as long as the process
    def tables(self, profile: str | None, country: str | None) -> tuple[KeywordTable, ...]:
        custom = [
            KeywordTable((c.canonical_op, c.keywords) for c in group)
            for group in self._scoped(profile, country)
        ]
        return (*custom, DEFAULT_TABLE)

    # A campaign's replies repeat a few texts (STOP, Stop, stop.) thousands of times.
    @lru_cache(maxsize=8192)  # noqa: B019
    def classify(
        self, text: str, autoresponse_type: str | None, profile: str | None, country: str | None
    ) -> Verdict:
        return classify(text, autoresponse_type, tables=self.tables(profile, country))

    @lru_cache(maxsize=1024)  # noqa: B019
    def _telnyx_keywords(self, profile: str | None, country: str | None) -> dict[str, str]:
        lists: list[tuple[str, Iterable[str]]] = [
            *TELNYX_DEFAULT_KEYWORDS.items(),
            *(
                (c.canonical_op, c.keywords)
                for group in self._scoped(profile, country)
                for c in group
                if c.canonical_op in (START, STOP, HELP)
            ),
        ]
        return {_telnyx_form(k): op for op, keywords in lists for k in keywords}

    def telnyx_autoresponse_type(
        self, text: str, profile: str | None, country: str | None
    ) -> str | None:
        """What Telnyx would put in ``autoresponse_type``: its default keywords and the custom
        keywords of start/stop/help configurations, matched exactly (case and surrounding
        space aside). Never for REVOKE, look-alikes, styled letters or free text."""
        op = self._telnyx_keywords(profile, country).get(_telnyx_form(text))
        return op.upper() if op else None


def _telnyx_form(text: str) -> str:
    # Telnyx documents exact keyword matching; we assume it ignores case and outer spaces.
    return " ".join(text.split()).casefold()


def engine_from_file(path: Path | None) -> KeywordEngine:
    """The engine for KEYWORDS_FILE (defaults only when unset); KeywordsFileError if invalid."""
    return KeywordEngine(load_keywords_file(path) if path else ())


# --- keeping Telnyx's configurations in step with a file ----------------------------------------


@dataclass(frozen=True)
class Change:
    kind: str  # create | update | delete
    local: AutorespConfig | None
    remote: AutorespConfig | None

    def describe(self) -> str:
        config = self.local or self.remote
        assert config is not None
        where = f"op {config.op} country {config.country_code}"
        if self.kind == "create":
            return f"+ create {where}: keywords {list(config.keywords)}"
        assert self.remote is not None
        if self.kind == "delete":
            return f"- delete {self.remote.id} {where}: keywords {list(self.remote.keywords)}"
        assert self.local is not None
        parts = []
        if _keyword_set(self.local) != _keyword_set(self.remote):
            parts.append(f"keywords {list(self.remote.keywords)} -> {list(self.local.keywords)}")
        if self.local.resp_text != self.remote.resp_text:
            parts.append(f"resp_text {self.remote.resp_text!r} -> {self.local.resp_text!r}")
        if self.local.op != self.remote.op:
            parts.append(f"op {self.remote.op} -> {self.local.op}")
        return f"~ update {self.remote.id} {where}: " + "; ".join(parts)


def _keyword_set(config: AutorespConfig) -> set[str]:
    return {match_key(normalize(k)) for k in config.keywords}


def _same(local: AutorespConfig, remote: AutorespConfig) -> bool:
    return (
        local.canonical_op == remote.canonical_op
        and local.op == remote.op
        and _keyword_set(local) == _keyword_set(remote)
        and local.resp_text == remote.resp_text
    )


def from_telnyx(item: dict[str, Any], profile_id: str) -> AutorespConfig:
    """A configuration as Telnyx's API returns it (fields beyond ours are ignored)."""
    return AutorespConfig(
        op=str(item.get("op", "")).lower(),
        keywords=tuple(str(k) for k in item.get("keywords") or ()),
        resp_text=str(item.get("resp_text") or ""),
        country_code=str(item.get("country_code") or ANY_COUNTRY).upper()
        if item.get("country_code") != ANY_COUNTRY
        else ANY_COUNTRY,
        messaging_profile_id=profile_id,
        id=str(item["id"]) if item.get("id") else None,
    )


def for_profile(configs: Iterable[AutorespConfig], profile_id: str) -> list[AutorespConfig]:
    """The configurations of a file that apply to one messaging profile."""
    return [c for c in configs if c.messaging_profile_id in (None, profile_id)]


def plan_changes(local: Sequence[AutorespConfig], remote: Sequence[AutorespConfig]) -> list[Change]:
    """What to create, update and delete on Telnyx so that it holds exactly ``local``.

    A local configuration pairs with the remote one of the same ``id`` (files written by
    ``autoresp pull`` carry it), else with an unpaired remote one of the same op and country.
    """
    unpaired = list(remote)
    pairs: list[tuple[AutorespConfig, AutorespConfig | None]] = []
    for config in local:
        match = next((r for r in unpaired if config.id and r.id == config.id), None)
        if match is None:
            match = next(
                (
                    r
                    for r in unpaired
                    if (r.canonical_op, r.country_code)
                    == (config.canonical_op, config.country_code)
                ),
                None,
            )
        if match is not None:
            unpaired.remove(match)
        pairs.append((config, match))
    changes = [
        Change("create", config, None) if match is None else Change("update", config, match)
        for config, match in pairs
        if match is None or not _same(config, match)
    ]
    changes.extend(Change("delete", None, r) for r in unpaired)
    return changes
