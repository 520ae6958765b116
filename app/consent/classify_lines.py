"""Classify many texts at once (`optout-sync classify --file`): one text per line, or JSONL
objects ``{"text", "from", "profile"}``. Pure: lines in, one verdict line out for each.

A line is read as JSON only when it is a JSON object with a ``text``; any other line is the
text itself, so a history exported one message per line works as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import orjson

from app.consent.keyword_configs import KeywordEngine
from app.consent.phones import InvalidPhoneNumber, country_of


@dataclass(frozen=True)
class LineError:
    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


def _request(
    line: str, profile: str | None, sender: str | None
) -> tuple[str, str | None, str | None]:
    """(text, profile, sender) of one input line."""
    if line.startswith("{"):
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict) and "text" in document:
            text, profile = document["text"], document.get("profile", profile)
            sender = document.get("from", sender)
            if not isinstance(text, str):
                raise ValueError("text is not a string")
            if profile is not None and not isinstance(profile, str):
                raise ValueError("profile is not a string")
            if sender is not None and not isinstance(sender, str):
                raise ValueError("from is not a string")
            return text, profile, sender
    return line, profile, sender


def classify_lines(
    lines: Iterable[str],
    engine: KeywordEngine,
    profile: str | None = None,
    sender: str | None = None,
) -> Iterator[bytes | LineError]:
    """For each line, its verdict as one JSON line (the text first), or what is wrong with it.

    ``profile`` and ``sender`` apply to lines that do not name their own."""
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        try:
            text, line_profile, line_sender = _request(line, profile, sender)
        except ValueError as exc:
            yield LineError(number, str(exc))
            continue
        try:
            country = country_of(line_sender) if line_sender else None
        except InvalidPhoneNumber as exc:
            yield LineError(number, f"from: {exc}")
            continue
        verdict = engine.classify(text, None, line_profile, country)
        yield orjson.dumps({"text": text, **asdict(verdict)}) + b"\n"
