"""What comes back from analysts and goes to the next model: verdicts merged into their table,
retraining exports, and thresholds calibrated to the review capacity.

Each concern has its rules in a pure module (pandas and the contract, no Spark session needed;
checked by mypy) and its Spark I/O in another, which reads and publishes only through
``raksha.platform.tables``, ``raksha.platform.locks`` and ``raksha.platform.runs``:

- verdicts: ``verdict_file`` (a file's rows parsed and checked) and ``verdict_merge`` (which
  verdict wins; the MERGE's condition) / ``verdicts`` (``raksha label``: the MERGE);
- retraining exports: ``export_rules`` (selection rules, expected counts, reconciliation,
  manifests) / ``exports`` (``raksha export-retraining``);
- alert budget: ``thresholds`` (threshold picking, figures, the calibrated version) /
  ``alert_budget`` (``raksha calibrate``).

``reports`` prints what the three commands computed.
"""
