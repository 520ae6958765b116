"""Table access: one module per table, plus pools and migrations. SQL lives here."""
