"""optout-sync: keeps a subscriber database in step with what people text back to Telnyx
numbers. A webhook enters at ``web.receiver``; ``telnyx`` verifies and reads it; ``consent``
decides what it means and how state changes (pure); ``store`` holds one module per table;
``services`` joins them in transactions; ``cli`` and ``devtools`` are for people at a terminal.

Deliberately imports nothing: gunicorn imports this package before its config module runs,
and that config must set PROMETHEUS_MULTIPROC_DIR before prometheus_client is imported.
"""
