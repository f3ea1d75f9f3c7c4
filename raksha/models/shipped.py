"""Build the shipped default models in ``models/``: generate a week, train both, promote.

Run by ``make models``. The data is generated into a temporary folder and the models are
trained by the same code as ``raksha train-autoencoder`` / ``train-sequence``; older shipped
versions are removed so the repository keeps one version of each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from raksha import contract
from raksha.cli import setup_logging
from raksha.config import REPO_ROOT, load_config
from raksha.synthetic import generate

log = logging.getLogger(__name__)

START = dt.date(2026, 10, 5)  # a Monday: the week covers every weekday


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raksha.models.shipped")
    parser.add_argument("--models", default=str(REPO_ROOT / "models"))
    parser.add_argument("--sessions-per-day", type=int, default=20000)
    parser.add_argument("--attack-rate", type=float, default=0.05)
    args = parser.parse_args(argv)
    setup_logging(False)
    from raksha.platform.session import build_session
    from raksha.training.commands import train_autoencoder, train_sequence

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = load_config(
            sets=[
                f"paths.sessions={root / 'sessions'}",
                f"paths.actions={root / 'actions'}",
                f"paths.labels={root / 'labels'}",
                f"paths.warehouse={root / 'warehouse'}",
                f"paths.metastore={root / 'metastore'}",
                f"paths.models={root / 'models'}",
                "spark.master=local[2]",
            ]
        )
        end = START + dt.timedelta(days=6)
        print(
            generate(
                START,
                7,
                args.sessions_per_day,
                args.attack_rate,
                7,
                cfg.path("sessions"),
                cfg.path("actions"),
                cfg.path("labels"),
            )
        )
        spark = build_session(cfg, "raksha-shipped-models")
        try:
            versions = [train_autoencoder(spark, cfg, START, end), train_sequence(spark, cfg, START, end)]
        finally:
            spark.stop()
        target = Path(args.models)
        for version in versions:
            folder = target / version.name
            if folder.exists():
                shutil.rmtree(folder)
            shutil.copytree(root / "models" / version.name, folder)
            print(f"shipped {version.name}/{version.version}: {version.manifest.get('metrics')}")
    assert {v.name for v in versions} == {contract.AE_MODEL, contract.SEQ_MODEL}
    return 0


if __name__ == "__main__":
    sys.exit(main())
