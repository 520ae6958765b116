"""`optout-sync dev` — what `make run` runs — from an empty DATA_DIR, as a new user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from app.devtools.devstack import EmbeddedPostgres, free_port
from tests.conftest import ROOT, wait_for


def test_dev_brings_everything_up_applies_a_simulated_stop_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "TELNYX_PUBLIC_KEY",
            "API_TOKENS",
            "PROMETHEUS_MULTIPROC_DIR",
        )
    }
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        PORT=str(port),
        SWEEP_INTERVAL_SECONDS="2",
        PATH=os.pathsep.join((venv_bin, env.get("PATH", ""))),
    )
    cli = str(Path(sys.executable).parent / "optout-sync")
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        dev = subprocess.Popen(
            [cli, "dev"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"

            def ready() -> bool:
                try:
                    with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                        return response.status == 200
                except OSError:
                    return False

            wait_for(ready, timeout=90)
            banner = log_path.read_text()
            token = banner.split("API token", 1)[1].split()[0]
            assert f"{base}/webhooks/messaging" in banner

            webhook_url = f"{base}/webhooks/messaging"

            def simulate(*args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    [cli, "simulate", *args, "--to", "+17735550188", "--url", webhook_url],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=30,
                )

            sent = simulate("--text", "STOP", "--from", "+13125550147")
            assert sent.returncode == 0, sent.stdout + sent.stderr
            assert '200 {"status":"accepted"}' in sent.stdout

            def opted_out() -> bool:
                request = urllib.request.Request(
                    f"{base}/v1/subscribers/%2B13125550147?messaging_profile_id=dev-messaging-profile",
                    headers={"Authorization": f"Bearer {token}"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=2) as response:
                        return json.loads(response.read())["status"] == "opted_out"
                except OSError:
                    return False

            wait_for(opted_out, timeout=30)

            # A send Telnyx refused because the number had texted STOP: drift.
            refused = simulate("--finalized-error", "40300", "--from", "+13125550148")
            assert '200 {"status":"accepted"}' in refused.stdout, refused.stdout + refused.stderr

            def drift_reported() -> str:
                report = subprocess.run(
                    [cli, "drift", "report"], env=env, capture_output=True, text=True, timeout=30
                )
                return report.stdout if "+13125550148" in report.stdout else ""

            report = wait_for(drift_reported, timeout=30)
            assert "telnyx_send_block  was unknown  40300 — Blocked due to STOP message" in report
            assert report.rstrip().endswith(
                "1 numbers were textable here but opted out at Telnyx: 1 from telnyx_send_block"
            )
        finally:
            dev.send_signal(signal.SIGINT)
            code = dev.wait(60)
    assert code == 0, log_path.read_text()[-3000:]
    assert "optout-sync dev stopped" in log_path.read_text()
    assert EmbeddedPostgres(tmp_path / "data").running_port() is None
