"""The transactions that join the store and the consent rules, for the web, the workers
and the CLI."""
