"""Real-label budgets and ``syn2real bench schedules`` on a tiny configuration."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from datamodules.real_digits import split_indices
from datamodules.sources import BudgetSource, RealDigitsSource, stratified_budget
from syn2real.bench.schedules import schedules_command
from tests.conftest import make_samples, tiny_trainer_config, write_dataset


def test_budgets_are_seeded_stratified_and_nested() -> None:
    labels = RealDigits_pool_labels()
    small, large = stratified_budget(labels, 50, seed=1), stratified_budget(labels, 100, seed=1)
    assert large[:50] == small  # nested within a seed
    assert stratified_budget(labels, 50, seed=1) == small  # seeded
    assert set(stratified_budget(labels, 50, seed=2)) != set(small)
    assert set(Counter(labels[i] for i in small).values()) == {5}  # 5 per class
    assert len(set(large)) == 100


def RealDigits_pool_labels() -> list[int]:  # noqa: N802
    return RealDigitsSource(split="pool", use_labels=True).load().labels()


def test_budget_source_draws_from_the_pool_only() -> None:
    ds = BudgetSource(source=RealDigitsSource(split="pool", use_labels=True), budget=20, seed=0).load()
    pool_ids = {f"sklearn-digits-{i:04d}" for i in split_indices()["pool"]}
    ids = {ds[i].id for i in range(len(ds))}
    assert len(ids) == 20 and ids <= pool_ids  # never val/test images
    assert all(isinstance(ds[i].label, torch.Tensor) for i in range(len(ds)))


def test_budget_larger_than_the_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="budget 1001 is larger than the real pool"):
        BudgetSource(source=RealDigitsSource(split="pool", use_labels=True), budget=1001).load()
    with pytest.raises(ValueError, match="has no labels"):
        BudgetSource(source=RealDigitsSource(split="pool"), budget=5).load()


def test_bad_flags_fail_before_any_run(tmp_path: Path) -> None:
    assert schedules_command(["--budgets", "5000", "--out", str(tmp_path / "a")]) == 2
    assert schedules_command(["--schedules", "mixup", "--out", str(tmp_path / "b")]) == 2
    assert schedules_command(["--real-train", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.timeout(400)
def test_tiny_schedules_benchmark_writes_outputs_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "sched"
    argv = [
        "--budgets",
        "0",
        "10",
        "--seeds",
        "0",
        "--synthetic-samples",
        "64",
        "--synthetic-steps",
        "3",
        "--finetune-steps",
        "3",
        "--batch-size",
        "8",
        "--finetune-batch-size",
        "8",
        "--width",
        "4",
        "--accelerator",
        "cpu",
        "--out",
        str(out),
        "--jobs",
        "2",
    ]
    assert schedules_command(argv) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert sorted(r["name"] for r in rows) == ["hybrid@0.5", "pretrain_finetune", "real_only", "synthetic_only"]
    assert all(r["status"] == "ok" and 0 <= float(r["test/target_acc"]) <= 1 for r in rows)
    curves = json.loads((out / "results.json").read_text())["curves"]
    assert set(curves["hybrid@0.5"]) == {"0", "10"} and set(curves["real_only"]) == {"10"}
    assert "| pretrain_finetune |" in (out / "schedules.md").read_text()
    with Image.open(out / "schedules.png") as png:
        assert png.size == (640, 400)
    # the fine-tuning run really started from the synthetic checkpoint of the same seed
    config = (out / "pretrain_finetune__b10" / "config.seed0.yaml").read_text()
    assert str(out / "synthetic_only" / "seed0" / "checkpoints" / "last.ckpt") in config

    for name in ("real_only__b10", "pretrain_finetune__b10"):  # every budget run really trained its steps
        ckpt = torch.load(out / name / "seed0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        assert ckpt["global_step"] == 3, name

    assert schedules_command(argv) == 0  # resume: every cell reused (its regenerated config has the same fingerprint)
    assert {r["reused"] for r in csv.DictReader((out / "results.csv").open())} == {"True"}

    finetuned = (out / "pretrain_finetune__b10" / "seed0" / "results.json").stat().st_mtime
    later = finetuned + 60  # after the fine-tune, however long it took on a loaded machine
    os.utime(out / "synthetic_only" / "seed0" / "results.json", (later, later))  # as if pretrained again
    assert schedules_command(argv) == 0  # the fine-tune of the old weights is set aside and runs again
    reused = {r["name"]: r["reused"] for r in csv.DictReader((out / "results.csv").open())}
    assert reused == {"synthetic_only": "True", "real_only": "True", "hybrid@0.5": "True", "pretrain_finetune": "False"}
    assert (out / "pretrain_finetune__b10" / "seed0.stale" / "results.json").is_file()


def test_interrupted_schedules_say_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("syn2real.bench.schedules.run_cells", interrupt)
    assert schedules_command(["--budgets", "0", "10", "--seeds", "0", "--out", str(tmp_path / "s")]) == 130
    assert "Run the same command again to resume" in " ".join(capsys.readouterr().err.split())


@pytest.mark.timeout(400)
def test_adaptation_stage_and_refined_dataset_plug_into_the_schedules(tmp_path: Path) -> None:
    """``--pretrain-config`` (a DANN experiment) as the synthetic stage; ``--synthetic`` (a syn2real dataset)."""
    dann = {
        "seed_everything": 0,
        "trainer": tiny_trainer_config(checkpoint={"save_top_k": 0}, num_sanity_val_steps=0),
        "model": {
            "class_path": "adaptation.dann.DANN",
            "init_args": {
                "network": {"arch": "small_cnn", "width": 4, "num_classes": 10, "in_channels": 1},
                "discriminator_hidden": 8,
            },
        },
        "data": {
            "class_path": "datamodules.DomainPairDataModule",
            "init_args": {
                "source": {
                    "class_path": "datamodules.DigitsSimulatorSource",
                    "init_args": {"num_samples": 32, "seed": 0},
                },
                "target": {"class_path": "datamodules.RealDigitsSource", "init_args": {"split": "pool"}},
                "val": {
                    "class_path": "datamodules.RealDigitsSource",
                    "init_args": {"split": "val", "use_labels": True},
                },
                "test": {
                    "class_path": "datamodules.RealDigitsSource",
                    "init_args": {"split": "test", "use_labels": True},
                },
                "batch_size": 8,
            },
        },
    }
    config = tmp_path / "dann__tiny.yaml"
    config.write_text(yaml.safe_dump(dann))
    tiny = [
        "--budgets",
        "10",
        "--seeds",
        "0",
        "--finetune-steps",
        "2",
        "--synthetic-steps",
        "2",
        "--batch-size",
        "8",
        "--finetune-batch-size",
        "8",
        "--width",
        "4",
        "--accelerator",
        "cpu",
    ]

    out = tmp_path / "adapted"
    assert (
        schedules_command(
            [*tiny, "--schedules", "pretrain_finetune", "--pretrain-config", str(config), "--out", str(out)]
        )
        == 0
    )
    ckpt = out / "synthetic_only" / "seed0" / "checkpoints" / "last.ckpt"
    dann_state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert any(k.startswith("discriminator") for k in dann_state)  # the synthetic stage really was DANN
    assert str(ckpt) in (out / "pretrain_finetune__b10" / "config.seed0.yaml").read_text()
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {(r["name"], r["status"]) for r in rows} == {("synthetic_only", "ok"), ("pretrain_finetune", "ok")}

    refined = write_dataset(
        tmp_path / "refined", make_samples(40, size=32, num_classes=10), size=32, classes=[str(d) for d in range(10)]
    )
    out = tmp_path / "refined_runs"
    assert (
        schedules_command(
            [*tiny, "--schedules", "synthetic_only", "hybrid", "--synthetic", str(refined), "--out", str(out)]
        )
        == 0
    )
    assert str(refined) in (out / "hybrid@0.5__b10" / "config.seed0.yaml").read_text()
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {(r["name"], r["status"]) for r in rows} == {("synthetic_only", "ok"), ("hybrid@0.5", "ok")}


def test_settings_file_and_flags_are_checked_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "settings.yaml"
    bad.write_text("budgetz: [10]\n")
    assert schedules_command(["--config", str(bad), "--out", str(tmp_path / "a")]) == 2
    assert "settings.yaml: unknown key(s) ['budgetz']" in capsys.readouterr().err.replace("\n", "")
    bad.write_text("budgets: [ten]\n")
    assert schedules_command(["--config", str(bad), "--out", str(tmp_path / "a")]) == 2
    assert "'budgets' has an invalid value ['ten']" in capsys.readouterr().err.replace("\n", "")
    assert schedules_command(["--freeze", "everything", "--out", str(tmp_path / "a")]) == 2
    assert schedules_command(["--benchmark", "mnist", "--out", str(tmp_path / "a")]) == 2
    assert "unknown benchmark 'mnist'; use one of: digits, digits-photo" in capsys.readouterr().err.replace("\n", "")
    assert schedules_command(["--benchmark", "digits-photo", "--channels", "1", "--out", str(tmp_path / "a")]) == 2
    assert "has 3-channel images but the network takes 1" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "a").exists()


def test_digits_photo_schedules_use_colour_renders_and_photo_digits() -> None:
    from syn2real.bench.schedules import Plan, parse

    config, _ = parse(["--benchmark", "digits-photo"])
    assert config.network.in_channels == 3  # follows the benchmark unless --channels says otherwise
    plan = Plan(config)
    assert plan.synthetic["init_args"]["config"] == {"channels": 3}
    assert plan.test["init_args"] | {"background": "photo", "channels": 3} == plan.test["init_args"]
