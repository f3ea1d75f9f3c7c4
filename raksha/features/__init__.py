"""What the models see, computed as the notebooks compute it: the behavioural feature matrix and its
scaler (``behavior``), the ordered, encoded and padded action sequences (``sequences``). Pure
numpy/pandas and Spark column expressions; no model code."""
