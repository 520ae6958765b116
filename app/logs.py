"""Logging: one JSON object per line, phone numbers masked but for their last four digits."""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from typing import Any

# E.164 as it appears in messages, payloads and errors: + then 7-15 digits.
_E164 = re.compile(r"\+\d{3,11}(\d{4})(?!\d)")


def mask_numbers(text: str) -> str:
    """+13125550147 → +*******0147: enough to correlate, not enough to identify."""
    return _E164.sub(lambda m: "+" + "*" * (len(m.group(0)) - 5) + m.group(1), text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_numbers(record.getMessage()),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = mask_numbers(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class MaskingFormatter(logging.Formatter):
    """Plain text for `optout-sync dev`, masked all the same."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_numbers(super().format(record))


def formatter() -> logging.Formatter:
    if os.environ.get("LOG_FORMAT", "json").strip().lower() == "text":
        return MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    return JsonFormatter()


def configure(level: str | None = None) -> None:
    """Send every log record through the masking formatter (LOG_FORMAT=json|text)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL", "INFO")).upper())
