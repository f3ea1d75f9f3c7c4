from __future__ import annotations

import pytest

from raksha.config import ConfigError, load_config


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
