"""The state rules of spec §5, pure: how one consent event changes a subscriber's state and a
toll-free carrier block, and the audit entry that records it.

Consent is per (messaging profile, number); a STOP/START keyword to a toll-free number also
sets or lifts a carrier block per (toll-free number, subscriber); per key, the last event by
(occurred_at, event id) wins, and an older event arriving late is recorded as superseded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from app.consent.audit_chain import AuditEntry
from app.consent.intent import PER_SE
from app.consent.keywords import HELP, POSSIBLE_OPT_OUT, START, STOP, Verdict
from app.consent.phones import country_of, is_toll_free
from app.consent.values import DRIFT_SOURCES, ORDINARY, Action, ReviewState, Source, Status
from app.telnyx.events import InboundMessage

CONSENT_FOR_OP = {STOP: Status.OPTED_OUT, START: Status.OPTED_IN}
ACTION_FOR_OP = {
    STOP: Action.OPT_OUT,
    START: Action.OPT_IN,
    HELP: Action.HELP,
    POSSIBLE_OPT_OUT: Action.POSSIBLE_OPT_OUT,
}
CARRIER_ACTION = {True: Action.CARRIER_BLOCK, False: Action.CARRIER_UNBLOCK}

# Events sort by (occurred_at, event id); a key never touched sorts below every event.
OrderKey = tuple[datetime, str]
NEVER: OrderKey = (datetime.min.replace(tzinfo=UTC), "")


def is_newer(candidate: OrderKey, current: OrderKey | None) -> bool:
    return current is None or candidate > current


@dataclass
class SubscriberState:
    consent: str  # CONSENT_STATUSES: the last STOP/START
    last: OrderKey | None  # order of the event that set consent
    review_state: str | None = None  # ReviewState
    review_last: OrderKey | None = None  # order of the last possible opt-out
    # The latest opt-out and opt-in by occurred_at, whatever came after them: what consent
    # scopes compare across profiles (spec §9).
    last_opt_out_at: datetime | None = None
    last_opt_in_at: datetime | None = None
    changed: bool = False
    new: bool = False  # no row yet: the store inserts it

    def record(self, consent: Status, at: datetime) -> None:
        """Note an opt-out or an opt-in at ``at``, superseded or not."""
        if consent == Status.OPTED_OUT:
            self.last_opt_out_at = max(filter(None, (self.last_opt_out_at, at)))
        elif consent == Status.OPTED_IN:
            self.last_opt_in_at = max(filter(None, (self.last_opt_in_at, at)))
        self.changed = True

    @property
    def status(self) -> Status:
        """The effective status, the one rule for it: an opt-out beats everything; a pending
        review newer than the last STOP/START holds the number; otherwise the consent
        register. (The subscribers.status column stores what this returns.)"""
        if self.consent == Status.OPTED_OUT:
            return Status.OPTED_OUT
        if self.review_state == ReviewState.PENDING and is_newer(
            self.review_last or NEVER, self.last
        ):
            return Status.REVIEW
        return Status(self.consent)


@dataclass
class CarrierBlockState:
    blocked: bool
    since: datetime | None
    last: OrderKey | None
    profile: str | None
    changed: bool = False
    new: bool = False  # no row yet: the store inserts it


@dataclass(frozen=True)
class ConsentEvent:
    """What a text means, ready to apply: the message, its verdict, and when it arrived."""

    message: InboundMessage
    verdict: Verdict
    received_at: datetime | None
    # Consent that did not come by text (spec §10): how it came and its evidence's SHA-256.
    # Such an event has no text and no number of ours.
    channel: str | None = None
    evidence_sha256: str | None = None

    @property
    def order(self) -> OrderKey:
        return (self.message.occurred_at, self.message.event_id)

    @property
    def subscriber_key(self) -> tuple[str, str]:
        return (self.message.messaging_profile_id, self.message.subscriber_number)

    @property
    def carrier_key(self) -> tuple[str, str] | None:
        """(toll-free number, subscriber) when this sets or lifts a carrier block."""
        # Carriers act on keywords: a per-se word among fillers ("STOP NOW") is ours to read.
        if (
            self.verdict.op in (STOP, START)
            and self.verdict.rule != PER_SE
            and is_toll_free(self.message.our_number)
        ):
            return (self.message.our_number, self.message.subscriber_number)
        return None


def effective_op(verdict: Verdict, policy: str) -> str | None:
    """The op a verdict acts as: a possible opt-out under policy opt_out is a stop."""
    if verdict.op == POSSIBLE_OPT_OUT and policy == "opt_out":
        return STOP
    return verdict.op


def action_of(verdict: Verdict, policy: str) -> str:
    """What a verdict becomes under a policy: its audit action, or ``ordinary``."""
    op = effective_op(verdict, policy)
    if op is None or (op == POSSIBLE_OPT_OUT and policy == "ignore"):
        return ORDINARY
    return ACTION_FOR_OP.get(op, Action.CUSTOM)


# PostgreSQL text holds neither NUL nor a lone UTF-16 surrogate (half an emoji, which JSON
# can escape); they become U+FFFD, and the raw body in the inbox keeps the original bytes.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    return _UNSTORABLE.sub("\ufffd", text)


def _entry(event: ConsentEvent, **fields: object) -> AuditEntry:
    message = event.message
    texted = event.channel is None
    return AuditEntry(
        event_id=message.event_id,
        message_id=message.message_id,
        occurred_at=message.occurred_at,
        received_at=event.received_at,
        messaging_profile_id=message.messaging_profile_id,
        phone_number=message.subscriber_number,
        our_number=message.our_number if texted else None,
        country=country_of(message.subscriber_number),
        text=storable(message.text) if texted else None,
        autoresponse_type=message.autoresponse_type,
        telnyx_block=event.verdict.op == STOP
        and event.verdict.source in (Source.TELNYX, Source.TELNYX_SEND_BLOCK),
        channel=event.channel,
        evidence_sha256=event.evidence_sha256,
        **fields,  # type: ignore[arg-type]
    )


def is_drift(entry: AuditEntry) -> bool:
    """An opt-out learnt from Telnyx (a refused send, its opt-out list) for a number we did
    not hold as opted out: the sending side would have texted it (spec §12)."""
    return (
        entry.action == Action.OPT_OUT
        and entry.source in DRIFT_SOURCES
        and not entry.superseded
        and entry.previous_status != Status.OPTED_OUT
    )


def apply_to_subscriber(event: ConsentEvent, state: SubscriberState, policy: str) -> AuditEntry:
    """Apply one consent event to its subscriber state (in place) and describe it."""
    if event.verdict.source == Source.TELNYX_SEND_BLOCK:
        policy = "review"  # an unclear 40300 is for a person to judge, whatever texts do
    op = effective_op(event.verdict, policy)
    if op is None or event.verdict.source is None:
        raise ValueError("an ordinary text changes no consent")
    previous = state.status
    superseded = False
    if op in CONSENT_FOR_OP:
        state.record(CONSENT_FOR_OP[op], event.message.occurred_at)
        if is_newer(event.order, state.last):
            state.consent, state.last, state.changed = CONSENT_FOR_OP[op], event.order, True
        else:
            superseded = True
    elif op == POSSIBLE_OPT_OUT and policy == "review":
        if is_newer(event.order, state.review_last):
            state.review_state, state.review_last = ReviewState.PENDING, event.order
            state.changed = True
        else:
            superseded = True
    return _entry(
        event,
        action=action_of(event.verdict, policy),
        source=event.verdict.source,
        previous_status=previous,
        new_status=state.status,
        superseded=superseded,
    )


def apply_to_carrier_block(event: ConsentEvent, state: CarrierBlockState) -> AuditEntry:
    blocked = event.verdict.op == STOP
    previous = state.blocked
    superseded = not is_newer(event.order, state.last)
    if not superseded:
        if blocked != state.blocked or state.since is None:
            state.since = event.message.occurred_at
        state.blocked, state.last = blocked, event.order
        state.profile, state.changed = event.message.messaging_profile_id, True
    return _entry(
        event,
        action=CARRIER_ACTION[blocked],
        source=event.verdict.source or Source.KEYWORD,
        previous_status="blocked" if previous else "unblocked",
        new_status="blocked" if state.blocked else "unblocked",
        superseded=superseded,
    )
