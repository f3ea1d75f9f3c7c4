"""Training as the notebooks train: the fit itself (``fit``, no Spark), the training window read with
Spark (``window``), and the commands that tie them together and write a version (``commands``)."""
