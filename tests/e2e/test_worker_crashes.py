"""An event whose attempts end with the worker process (a hard time limit, out of memory, a
crash in C) is set aside as `failed` after MAX_ATTEMPTS, and the rest of its batch applied.

The crash is real: the test holds a row lock that the event's apply waits on, and SIGKILLs
the Celery pool process waiting there, each time it is back."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest
from flask.testing import FlaskClient
from nacl.signing import SigningKey

from app.config import Settings
from app.web.handoff import Enqueuer
from tests.conftest import CeleryWorker, example, fresh_ids, new_profile, post_webhook, wait_for
from tests.e2e.support import subscriber_status

VICTIM = "+13125550101"
OTHERS = ("+13125550102", "+13125550103", "+13125550104")


@pytest.fixture(scope="module")
def worker_extra_env() -> dict[str, str]:
    # Only the tasks this test sends run: their pool processes are the ones it kills, never
    # the worker's main process, whose sweeper thread would otherwise drain too.
    return {"SWEEP_INTERVAL_SECONDS": "3600"}


def stop_from(number: str, profile: str) -> dict[str, object]:
    payload = fresh_ids(example("stop_long_code"), profile)
    payload["data"]["payload"]["from"]["phone_number"] = number  # type: ignore[index]
    return payload


def inbox_state(url: str, event_id: str) -> tuple[str, int, str | None]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT status, starts, last_error FROM webhook_events WHERE event_id = %s",
            (event_id,),
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def pool_process_waiting_on_a_lock(url: str) -> tuple[int, int] | None:
    """(process id, its PostgreSQL backend's) of a worker connection waiting on a lock."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT application_name, pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND application_name LIKE 'optout-sync-worker-%'"
        ).fetchone()
    return (int(row[0].rsplit("-", 1)[1]), row[1]) if row else None


def end_backend(url: str, backend: int) -> None:
    # PostgreSQL notices a dead client only when the backend next talks to it; the worker
    # role's lock_timeout (10 s) bounds that in production, and the test need not wait.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (backend,))


def test_an_event_that_kills_its_worker_is_set_aside_and_its_batch_applied(
    celery_worker: CeleryWorker,
    e2e_client: FlaskClient,
    e2e_settings: Settings,
    signing_key: SigningKey,
) -> None:
    url = e2e_settings.database_url or ""
    enqueuer = Enqueuer(e2e_settings)
    profile = new_profile()
    # The victim has a subscriber row, applied normally.
    post_webhook(e2e_client, stop_from(VICTIM, profile), signing_key)
    enqueuer.apply_pending()
    wait_for(lambda: subscriber_status(url, profile, VICTIM) == "opted_out")

    assert celery_worker.process is not None
    killed: list[int] = []
    with psycopg.connect(url) as locker:
        locker.execute(
            "SELECT 1 FROM subscribers WHERE messaging_profile_id = %s AND phone_number = %s"
            " FOR UPDATE",
            (profile, VICTIM),
        )
        victim = stop_from(VICTIM, profile)
        for payload in (victim, *(stop_from(number, profile) for number in OTHERS)):
            post_webhook(e2e_client, payload, signing_key)

        def set_aside() -> bool:
            status, _, _ = inbox_state(url, victim["data"]["id"])  # type: ignore[index]
            if status == "failed":
                return True
            enqueuer.apply_pending()  # what beat's sweep would send
            waiting = pool_process_waiting_on_a_lock(url)
            if waiting is not None:
                pid, backend = waiting
                assert pid != celery_worker.process.pid  # type: ignore[union-attr]
                os.kill(pid, signal.SIGKILL)  # dies mid-apply, as a hard time limit would
                killed.append(pid)
                end_backend(url, backend)
            return False

        wait_for(set_aside, timeout=90, interval=0.5)

    status, starts, error = inbox_state(url, victim["data"]["id"])  # type: ignore[index]
    assert (status, starts) == ("failed", e2e_settings.max_attempts)
    assert len(killed) == e2e_settings.max_attempts
    assert error is not None and error.startswith(
        f"the worker process ended during {e2e_settings.max_attempts} of its"
        f" {e2e_settings.max_attempts} attempts"
    )
    # Its batch-mates were applied, each once.
    wait_for(lambda: all(subscriber_status(url, profile, n) == "opted_out" for n in OTHERS))
