"""optout-sync web application: the Telnyx webhook receiver and the read API.

Deliberately imports nothing: gunicorn imports this package before its config module runs,
and that config must set PROMETHEUS_MULTIPROC_DIR before prometheus_client is imported.
The application factory is ``app.web:create_app``.
"""
