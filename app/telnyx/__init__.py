"""Telnyx's side of the wire: webhook signatures, event envelopes, and its HTTP API."""
