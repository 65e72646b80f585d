"""Includes with dotted overrides in config files (the ``syn2real`` parser mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syn2real.cli.config_files import compose, load


def test_an_include_then_dotted_keys_merge(tmp_path: Path) -> None:
    (tmp_path / "trainer").mkdir()
    (tmp_path / "trainer" / "cpu.yaml").write_text("accelerator: cpu\nlogger: {class_path: L, init_args: {a: 1}}\n")
    (tmp_path / "exp").mkdir()
    text = "trainer: ../trainer/cpu.yaml\ntrainer.max_epochs: 3\ntrainer.logger.init_args.a: 2\nmodel: m.yaml\n"
    out = load(text, path=str(tmp_path / "exp" / "e.yaml"))
    assert out == {
        "trainer": {"accelerator": "cpu", "max_epochs": 3, "logger": {"class_path": "L", "init_args": {"a": 2}}},
        "model": "m.yaml",
    }  # an include without overrides is left to jsonargparse


def test_plain_yaml_is_unchanged_and_a_missing_include_is_named(tmp_path: Path) -> None:
    assert compose({"a.b": 1, "c": "x.yaml"}) == {"a.b": 1, "c": "x.yaml"}
    assert compose([1, 2]) == [1, 2]
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml not found"):
        load("trainer: nope.yaml\ntrainer.max_epochs: 1\n", path=str(tmp_path / "e.yaml"))
    (tmp_path / "t.yaml").write_text("logger: false\n")
    with pytest.raises(ValueError, match="'logger' is not a mapping"):
        load("trainer: t.yaml\ntrainer.logger.name: x\n", path=str(tmp_path / "e.yaml"))
