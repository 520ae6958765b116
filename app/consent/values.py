"""Every consent status, audit action and audit source, defined once. The database's CHECK
constraints hold the same values (a test compares them)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A subscriber's effective status, the one can-send reads (rules.SubscriberState)."""

    UNKNOWN = "unknown"  # seen (a HELP, say), never a STOP or START
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    REVIEW = "review"  # held: a possible opt-out newer than the last STOP/START


# The consent register: the last STOP or START, whatever review says.
CONSENT_STATUSES = (Status.UNKNOWN, Status.OPTED_IN, Status.OPTED_OUT)


class ReviewState(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


class Action(StrEnum):
    """What an audit row records."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    POSSIBLE_OPT_OUT = "possible_opt_out"
    CARRIER_BLOCK = "carrier_block"
    CARRIER_UNBLOCK = "carrier_unblock"
    CUSTOM = "custom"
    REVIEW_CONFIRMED = "review_confirmed"
    REVIEW_DISMISSED = "review_dismissed"


class Source(StrEnum):
    """Who decided what an audit row records."""

    TELNYX = "telnyx"
    KEYWORD = "keyword"
    INTENT = "intent"
    OPERATOR = "operator"
    RECONCILE = "reconcile"
    API = "api"  # consent recorded through POST /v1/consent or an import
    TELNYX_SEND_BLOCK = "telnyx_send_block"  # a send refused with 40300 (spec §12)


# Opt-outs these sources record that we did not already hold are drift (spec §12): the
# sending side had a number as textable that Telnyx had blocked.
DRIFT_SOURCES = frozenset({Source.TELNYX_SEND_BLOCK, Source.RECONCILE})


class Channel(StrEnum):
    """How consent that did not come by SMS came (spec §10)."""

    WEB_FORM = "web_form"
    AGENT = "agent"
    EMAIL = "email"
    VOICE = "voice"
    PAPER = "paper"
    IMPORT = "import"
    API = "api"


# What a text that changes nothing becomes: no audit row, this inbox outcome.
ORDINARY = "ordinary"
