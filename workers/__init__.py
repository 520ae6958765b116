"""The Celery app and its thin task shells; the work itself is in app.services."""
