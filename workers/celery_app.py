"""The Celery application run by the Procfile's `worker` and `beat` processes."""

from __future__ import annotations

import logging
import sys

from celery import Celery

from app import celery_config
from app.config import ConfigError, Settings
from workers.autoresp import KeywordsFileError, engine_from_file
from workers.sync import Rules

try:
    settings = Settings.from_env()
    settings.require_worker()
    if not settings.broker_url:
        raise ConfigError("refusing to start: REDIS_URL (or CELERY_BROKER_URL) not set")
    rules = Rules(engine_from_file(settings.keywords_file), settings.possible_opt_out_policy)
except ConfigError as exc:
    sys.exit(f"optout-sync: {exc}")
except KeywordsFileError as exc:
    sys.exit(f"optout-sync: refusing to start: KEYWORDS_FILE {exc}")

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

celery = Celery("optout_sync", include=["workers.tasks"])
celery.conf.update(celery_config.build(settings))
app = celery  # `celery --app workers.celery_app` looks for `app` or `celery`
