"""The consent domain, pure: what a text means, how state changes, how the audit chain is
hashed. It imports no web, task, database or broker library (an import contract checks)."""
