"""Outbound webhooks to the organisation's own systems (spec §11): the Standard Webhooks
format and signature, event types, the retry schedule, URL safety, and the HTTP sender."""
