"""bench console: each console page's server time at scale (spec §14, 200 ms with a million
subscribers), against the same page on an empty database in the same run."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import psycopg

from app.devtools.bench.common import Context, Figure

ADMIN = "bench-admin"
LOOKED_UP = "%2B13122000002"  # subscriber 2: a history on its profile


def _signed_in_console(url: str) -> Any:
    """The Flask app in-process on the scratch database, signed in with an admin token."""
    from nacl.signing import SigningKey

    from app.config import Settings
    from app.devtools.simulate import public_key_b64
    from app.web import create_app

    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "API_TOKENS": f"admin:{ADMIN}",
            "TELNYX_PUBLIC_KEY": public_key_b64(SigningKey.generate()),
            "SECRET_KEY": "bench-" * 8,
        }
    )
    client = create_app(settings).test_client()
    form = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    signed = client.post("/console/login", data={"token": ADMIN, "csrf_token": token[1]})
    if signed.status_code != 302:
        raise RuntimeError(f"console login answered {signed.status_code}")
    return client


PAGES = {
    "overview": "/console/",
    "review": "/console/review",
    "subscriber": f"/console/subscribers?phone={LOOKED_UP}",
    "events": "/console/events",
    "exports": "/console/exports",
    "endpoints": "/console/endpoints",
}


def fill_console(conn: psycopg.Connection, subscribers: int) -> None:
    """A deployment's worth of rows, shaped like real ones and written in bulk: subscribers in
    every status (one in 5,000 held for review), two audit rows each over 90 days (one in
    1,000 learnt from Telnyx's send errors), their daily counts, failed and invalid events
    among processed ones, and two endpoints, one with an attempt for every audit row. The
    chain is not valid, which is fine for measuring pages (never run this on a real log)."""
    n = subscribers
    conn.execute(
        "INSERT INTO subscribers (messaging_profile_id, phone_number, status, consent_status,"
        "  last_occurred_at, last_event_id, review_state, review_occurred_at, review_event_id)"
        " SELECT 'profile-' || (g %% 4), '+1312' || (2000000 + g),"
        "  CASE WHEN g %% 5000 = 0 THEN 'review' WHEN g %% 10 < 6 THEN 'opted_in'"
        "    WHEN g %% 10 < 9 THEN 'opted_out' ELSE 'unknown' END,"
        "  CASE WHEN g %% 10 < 6 THEN 'opted_in' WHEN g %% 10 < 9 THEN 'opted_out'"
        "    ELSE 'unknown' END,"
        "  now() - interval '90 days' * (g::float8 / %(n)s), 'evt-' || (2 * g),"
        "  CASE WHEN g %% 5000 = 0 THEN 'pending' END,"
        "  CASE WHEN g %% 5000 = 0 THEN now() - interval '1 hour' * (g / 5000) END,"
        "  CASE WHEN g %% 5000 = 0 THEN 'evt-' || (2 * g) END"
        " FROM generate_series(1, %(n)s) g",
        {"n": n},
    )
    conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
    conn.execute(
        "INSERT INTO audit_log (seq, recorded_at, event_id, message_id, occurred_at, received_at,"
        "  messaging_profile_id, phone_number, our_number, country, action, source, text,"
        "  previous_status, new_status, superseded, telnyx_block, prev_hash, hash)"
        " SELECT g, t, 'evt-' || g, 'msg-' || g, t - interval '50 ms', t - interval '40 ms',"
        "  'profile-' || (((g + 1) / 2) %% 4), '+1312' || (2000000 + (g + 1) / 2),"
        "  '+17735550188', 'US',"
        "  CASE WHEN g %% 5000 = 0 THEN 'possible_opt_out' WHEN g %% 3 = 0 THEN 'opt_out'"
        "    ELSE 'opt_in' END,"
        "  CASE WHEN g %% 1000 = 0 THEN 'telnyx_send_block' WHEN g %% 3 = 0 THEN 'keyword'"
        "    ELSE 'api' END,"
        "  CASE WHEN g %% 5000 = 0 THEN 'please stop' WHEN g %% 3 = 0 THEN 'STOP' END,"
        "  'opted_in', CASE WHEN g %% 3 = 0 THEN 'opted_out' ELSE 'opted_in' END, false, false,"
        "  md5(g::text) || md5(g::text), md5(g::text) || md5('x' || g)"
        " FROM generate_series(1, 2 * %(n)s) g,"
        "  LATERAL (SELECT now() - interval '90 days' * ((2 * %(n)s - g)::float8 / (2 * %(n)s)))"
        "   AS at(t)",
        {"n": n},
    )
    conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
    conn.execute(
        "INSERT INTO audit_daily (day, action, rows)"
        " SELECT (recorded_at AT TIME ZONE 'UTC')::date, action, count(*) FROM audit_log"
        " GROUP BY 1, 2"
    )
    conn.execute(
        "INSERT INTO webhook_events (event_id, event_type, status, raw_body, attempts,"
        "  last_error, outcome)"
        " SELECT 'evt-in-' || g, 'message.received',"
        "  CASE WHEN g %% 2000 = 0 THEN 'failed' WHEN g %% 2000 = 1 THEN 'invalid'"
        "    ELSE 'processed' END,"
        "  '{}'::bytea, 1,"
        "  CASE WHEN g %% 2000 = 0 THEN 'OperationalError: the database went away' END,"
        "  CASE WHEN g %% 2000 = 1 THEN 'invalid: data.payload.from is missing' END"
        " FROM generate_series(1, %(n)s / 10) g",
        {"n": n},
    )
    conn.execute(
        "INSERT INTO endpoints (id, url, secret) VALUES"
        " ('ep_busy', 'https://crm.example.com/hooks', 'whsec_x'),"
        " ('ep_quiet', 'https://quiet.example.com/hooks', 'whsec_y')"
    )
    conn.execute(
        "INSERT INTO outbox (endpoint_id, audit_seq, event_type, status, attempts, delivered_at)"
        " SELECT CASE WHEN seq % 100000 = 0 THEN 'ep_quiet' ELSE 'ep_busy' END, seq,"
        "  'consent.opted_out', 'delivered', 1, recorded_at FROM audit_log"
    )
    conn.execute(
        "INSERT INTO delivery_attempts (outbox_id, endpoint_id, attempted_at, status_code,"
        "  duration_ms)"
        " SELECT o.id, o.endpoint_id, o.delivered_at, 200, 12 FROM outbox o"
    )
    conn.commit()


def _page_times(client: Any, rounds: int) -> dict[str, float]:
    """Median seconds of each page, rendered in full by the app in-process (server time)."""
    medians = {}
    for name, path in PAGES.items():
        samples = []
        for _ in range(rounds + 1):  # the first warms pools, plans and templates
            started = time.perf_counter()
            answer = client.get(path)
            samples.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"{path} answered {answer.status_code}")
        medians[name] = statistics.median(samples[1:])
    return medians


def bench_console(ctx: Context, url: str) -> list[Figure]:
    subscribers = ctx.size.console_subscribers
    client = _signed_in_console(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        empty = _page_times(client, rounds=5)
        conn.autocommit = False
        fill_console(conn, subscribers)
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")  # as autovacuum would have, long before a log is this long
    at_scale = _page_times(client, rounds=5)
    detail = f"{subscribers:,} subscribers, {2 * subscribers:,} audit rows; bar 200 ms"
    return [
        Figure(
            f"console-{name}",
            at_scale[name] * 1000,
            "ms",
            "empty database",
            empty[name] * 1000,
            higher_is_better=False,
            detail=detail,
        )
        for name in PAGES
    ]
