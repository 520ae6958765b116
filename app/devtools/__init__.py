"""Tools for people at a terminal: embedded servers, the process runner, signed test
payloads, benchmarks and their load generator. Only the CLI imports them."""
