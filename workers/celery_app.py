"""The Celery application run by the Procfile's `worker` and `beat` processes."""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery, signals

from app import celery_config, logs
from app.config import ConfigError, Settings
from app.consent.keyword_configs import KeywordsFileError, engine_from_file
from app.services.apply_events import Rules

try:
    settings = Settings.from_env().require_worker()
    rules = Rules(engine_from_file(settings.keywords_file), settings.possible_opt_out_policy)
except ConfigError as exc:
    sys.exit(f"optout-sync: {exc}")
except KeywordsFileError as exc:
    sys.exit(f"optout-sync: refusing to start: KEYWORDS_FILE {exc}")

logs.configure()

celery = Celery("optout_sync", include=["workers.tasks"])
celery.conf.update(celery_config.build(settings))
app = celery  # `celery --app workers.celery_app` looks for `app` or `celery`


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _mask_celery_logs(logger: Any, **_: Any) -> None:
    # Celery installs its own handlers; give them the JSON, number-masking formatter too.
    for handler in logger.handlers:
        handler.setFormatter(logs.formatter())
