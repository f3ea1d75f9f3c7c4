"""The nightly job (``daily``: read, validate, sequence, score, decide, audit, publish) and the
summary a run prints."""
