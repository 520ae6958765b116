"""optout-sync web application: the Telnyx webhook receiver and the read API."""

from app.web import create_app

__all__ = ["create_app"]
