"""Applying model versions to a day: ready-to-run scorers with their reasons (``scorers``), tail
calibration of raw outputs, the pandas UDFs and the per-worker model cache, and the challenger."""
