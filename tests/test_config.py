from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raksha import cli
from raksha.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent


def test_base_defaults_match_the_design():
    cfg = load_config()
    assert cfg.get("paths.sessions") == "data/raw/sessions"
    assert cfg.get("paths.warehouse") == "data/warehouse"
    assert cfg.get("spark.master") == "local[*]"
    assert cfg.get("catalog.database") == "raksha"


def test_overlay_then_sets_win_in_order(tmp_path):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("review:\n  capacity: 10\nspark:\n  conf:\n    spark.sql.shuffle.partitions: 3\n")
    cfg = load_config([overlay], ["review.capacity=25", "spark.conf.spark.executor.cores=4"])
    assert cfg.get("review.capacity") == 25
    assert cfg.get("spark.conf")["spark.sql.shuffle.partitions"] == 3
    assert cfg.get("spark.conf")["spark.executor.cores"] == 4


@pytest.mark.parametrize("item", ["review.capacty=3", "pathz.sessions=/x", "decision.seq_block=0.5"])
def test_a_typo_in_a_key_is_an_error(item):
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(sets=[item])


def test_typo_in_overlay_names_the_file(tmp_path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("paths:\n  sesions: /x\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'paths.sesions'"):
        load_config([overlay])


def test_relative_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(sets=["paths.models=hdfs:///m"])
    assert cfg.path("sessions") == str(tmp_path / "data/raw/sessions")
    assert cfg.path("models") == "hdfs:///m"


def test_digest_changes_with_the_config():
    assert load_config().digest() == load_config().digest()
    assert load_config().digest() != load_config(sets=["review.capacity=1"]).digest()


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("review.capacity=abc", r"config key 'review\.capacity': Input should be a valid integer"),
        ("review.capacity=-1", r"config key 'review\.capacity': Input should be greater than or equal to 0"),
        ("review.audit_rate=2", r"config key 'review\.audit_rate': Input should be less than or equal to 1"),
        ("scoring.runtime=tensorflow", r"config key 'scoring\.runtime': Input should be 'onnx' or 'keras'"),
        ("scoring.threads_per_worker=0", r"config key 'scoring\.threads_per_worker'"),
        (
            "privacy.keep_network_ids=perhaps",
            r"config key 'privacy\.keep_network_ids': Input should be a valid boolean",
        ),
        ("catalog.database=raksha-prod", r"config key 'catalog\.database'"),
        ("publish.retention_days=-3", r"config key 'publish\.retention_days'"),
        ("training.autoencoder.test_size=1.5", r"config key 'training\.autoencoder\.test_size'"),
        ("paths.sessions=", r"config key 'paths\.sessions'"),
    ],
)
def test_a_value_of_the_wrong_type_or_range_fails_at_load_naming_the_key(item, message):
    with pytest.raises(ConfigError, match=message):
        load_config(sets=[item])


def test_the_shipped_overlays_and_good_values_pass_the_checks():
    for overlay in ("conf/local.yaml", "conf/cluster.yaml"):
        load_config([REPO / overlay])
    cfg = load_config(sets=["review.capacity=0", "review.audit_rate=1", "privacy.location_decimals=null"])
    assert (cfg.get("review.capacity"), cfg.get("review.audit_rate")) == (0, 1)  # values kept as given


def test_a_bad_value_stops_a_command_before_it_reads_anything(tmp_path, capsys):
    code = cli.main(
        ["score", "--date", "2026-01-01", "--set", "review.capacity=abc", "--set", f"paths.sessions={tmp_path}/none"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "raksha score: error: config key 'review.capacity'" in err
    assert "SparkSession" not in err  # failed at load, before any session or read


def test_config_show_prints_the_effective_configuration(capsys):
    assert (
        cli.main(
            ["config", "show", "--set", "review.capacity=25", "--set", "spark.conf.spark.sql.shuffle.partitions=3"]
        )
        == 0
    )
    out = capsys.readouterr().out
    shown = yaml.safe_load(out)
    assert shown["review"]["capacity"] == 25
    assert shown["spark"]["conf"]["spark.sql.shuffle.partitions"] == 3
    assert shown == load_config(sets=["review.capacity=25", "spark.conf.spark.sql.shuffle.partitions=3"]).data
