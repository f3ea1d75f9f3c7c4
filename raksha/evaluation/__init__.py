"""The models and the review queue measured against ground truth (``raksha evaluate``,
``raksha queue-precision``): the numbers on pandas frames, ROC-AUC, PR-AUC, precision and recall
by attack kind and the IsolationForest baseline (``metrics``, no Spark); the window of scored days,
its ground truth (generated labels or analysts' verdicts) and raw features read with Spark, the
baseline scored there (``window``); the JSON report and the printed tables (``report``)."""
