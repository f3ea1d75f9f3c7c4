"""What comes back from analysts and goes to the next model: verdicts merged into their table,
retraining exports, and thresholds calibrated to the review capacity (``alert_budget``)."""
