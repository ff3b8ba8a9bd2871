"""rundir.py: one error policy per run-directory file, and one writer of config.json's `train`."""

import json

import pytest

from sessionrec.errors import RunError
from sessionrec.rundir import read_config, read_metrics, record_train_settings

CONFIG = {"model": "pop", "num_items": 3, "params": {}, "dataset": {}, "train": {"epochs": 1}}


def test_metrics_missing_means_not_finished_and_malformed_names_the_file(tmp_path):
    with pytest.raises(RunError, match=r"metrics\.json: missing \(the run has not finished\)"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text('{"valid": {}')
    with pytest.raises(RunError, match=r"metrics\.json: corrupted \("):
        read_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text('{"valid": {}, "test": 3}')
    with pytest.raises(RunError, match=r"metrics\.json: corrupted \('test' is not an object\)"):
        read_metrics(tmp_path, required=())
    (tmp_path / "metrics.json").write_text('{"valid": {"hr@20": 0.5}}')
    with pytest.raises(RunError, match=r"metrics\.json: no test metrics"):
        read_metrics(tmp_path)
    assert read_metrics(tmp_path, required=("valid",)) == {"valid": {"hr@20": 0.5}}


def test_config_is_checked_once(tmp_path):
    with pytest.raises(RunError, match=r"not a run directory \(no config\.json\)"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(dict(CONFIG, num_items=True)))
    with pytest.raises(RunError, match=r"config\.json: field 'num_items' must be int"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    assert read_config(tmp_path) == CONFIG


def test_train_settings_are_recorded_with_what_each_resume_changed(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    record_train_settings(tmp_path, {"epochs": 2, "ks": (10, 20)})
    resume = {"command": "sessionrec train pop --resume", "commit": "abc"}
    record_train_settings(tmp_path, {"epochs": 3, "ks": (10, 20)}, resume)
    config = read_config(tmp_path)
    assert config["train"] == {"epochs": 3, "ks": [10, 20]}
    assert config["resumes"] == [dict(resume, changed={"epochs": [2, 3]})]


def test_a_resume_that_writes_its_changes_first_still_records_them(tmp_path):
    """`train --resume --epochs 5` writes the new settings before training (a crash then
    resumes with them too); when it finishes, the record says what it changed."""
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    record_train_settings(tmp_path, {"epochs": 2, "patience": 3})
    record_train_settings(tmp_path, {"epochs": 5, "patience": 3}, starting=True)
    record_train_settings(tmp_path, {"epochs": 6, "patience": 3}, starting=True)  # crashed, again
    resume = {"command": "sessionrec train pop --resume --epochs 6", "commit": "abc"}
    record_train_settings(tmp_path, {"epochs": 6, "patience": 3}, resume)
    config = read_config(tmp_path)
    assert config["resumes"] == [dict(resume, changed={"epochs": [2, 6]})]
    assert "resuming_from" not in config
