"""The configuration files, installed with the package as ``raksha.conf``: ``base.yaml`` (every key,
read by ``raksha.config``) and the overlays ``local.yaml`` and ``cluster.yaml``. A job shipped to a
cluster finds them inside its environment, not in a checkout of the repository."""
