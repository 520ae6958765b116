"""Celery app, tasks, and the pure domain logic they wrap (keywords, sync, audit)."""
