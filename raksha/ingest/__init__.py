"""A day's input: reading the session and action-log Parquet against the contract's schemas, and the
per-row quality checks that split valid sessions from quarantined ones."""
