"""``syn2real bench zoo`` on tiny configs: real runs in seconds, well-formed outputs, failures kept, resume."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import yaml
from PIL import Image

from syn2real.bench.zoo import zoo_command
from tests.conftest import tiny_trainer_config

CONFIGS = Path(__file__).parents[3] / "configs"


def _tiny(name: str, folder: Path, **model_args: object) -> None:
    """A tiny experiment ``<name>__tiny.yaml`` in ``folder/experiments`` (``folder`` is then a configs folder)."""
    cfg = yaml.safe_load((CONFIGS / "smoke" / "task.yaml").read_text())
    cfg["trainer"] = yaml.safe_load((CONFIGS / "trainer" / "smoke.yaml").read_text())
    cfg["trainer"].update(
        {
            "fast_dev_run": False,
            "max_epochs": 1,
            "limit_train_batches": 2,
            "limit_val_batches": 1,
            "limit_test_batches": 1,
            "enable_checkpointing": False,
        }
    )
    cfg["model"]["init_args"].update(model_args)
    (folder / "experiments").mkdir(parents=True, exist_ok=True)
    (folder / "experiments" / f"{name}__tiny.yaml").write_text(yaml.safe_dump(cfg))


def _pairs(folder: Path, rows: dict[str, dict[str, str]]) -> None:
    (folder / "bench").mkdir(parents=True, exist_ok=True)
    (folder / "bench" / "zoo.yaml").write_text(yaml.safe_dump({"seeds": [0, 1], "rows": rows}, sort_keys=False))


@pytest.mark.timeout(300)
def test_zoo_writes_paired_tables_reports_failures_and_resumes(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    _tiny("source_only", configs)
    _tiny("broken", configs, network={"arch": "no_such_network", "num_classes": 3})
    _pairs(configs, {"source_only": {"reference": "baseline"}, "broken": {"baseline": "source_only"}})
    out = tmp_path / "zoo"
    argv = ["--benchmark", "tiny", "--seeds", "3", "4", "--configs", str(configs), "--out", str(out), "--jobs", "2"]
    assert zoo_command(argv) == 1  # one experiment fails: exit status says so

    rows = list(csv.DictReader((out / "tiny" / "results.csv").open()))
    status = {(r["name"], r["seed"], r["status"]) for r in rows}
    assert status == {(n, s, st) for n, st in [("source_only", "ok"), ("broken", "failed")] for s in ("3", "4")}
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(0 <= float(r["test/target_acc"]) <= 1 and 0 <= float(r["test_valsel/target_acc"]) <= 1 for r in ok)
    assert "unknown network 'no_such_network'" in next(r["error"] for r in rows if r["status"] == "failed")
    board = json.loads((out / "tiny" / "results.json").read_text())["leaderboard"]
    assert [(b["method"], b["runs"], b["failed"]) for b in board] == [("source_only", 2, 0), ("broken", 0, 2)]
    markdown = (out / "tiny" / "leaderboard.md").read_text()
    assert "| broken | source_only | n/a |" in markdown and "| 0 (2) |" in markdown
    with Image.open(out / "tiny" / "leaderboard.png") as png:
        assert png.size[0] > 100

    assert zoo_command(argv) == 1  # resume: finished cells are reused, failed ones retried
    rows = list(csv.DictReader((out / "tiny" / "results.csv").open()))
    assert {r["reused"] for r in rows if r["status"] == "ok"} == {"True"}


def test_a_row_without_a_pairing_or_a_single_seed_is_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    _tiny("source_only", configs)
    _tiny("newmethod", configs)
    _pairs(configs, {"source_only": {"reference": "baseline"}})
    out = tmp_path / "zoo"
    base = ["--benchmark", "tiny", "--configs", str(configs), "--out", str(out)]
    assert zoo_command([*base, "--seeds", "0", "1"]) == 2
    assert "no paired baseline for ['newmethod']" in " ".join(capsys.readouterr().err.split())
    _pairs(configs, {"source_only": {"reference": "baseline"}, "newmethod": {"baseline": "source_only"}})
    assert zoo_command([*base, "--seeds", "0"]) == 2
    assert "needs at least 2 seeds" in " ".join(capsys.readouterr().err.split())
    assert not out.exists()


def test_unknown_benchmark_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert zoo_command(["--benchmark", "nope", "--out", str(tmp_path)]) == 2
    message = " ".join(capsys.readouterr().err.split())
    known = "digits, digits-photo, digits-scenes, gta5_to_cityscapes, synthia_to_cityscapes, visda2017"
    assert f"unknown benchmark(s) ['nope']; use any of: {known}" in message
    assert not any(tmp_path.iterdir())


def test_interrupted_zoo_keeps_finished_runs_and_says_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    _tiny("source_only", configs)
    _pairs(configs, {"source_only": {"reference": "baseline"}})
    out = tmp_path / "zoo"
    finished = out / "tiny" / "source_only" / "seed0" / "results.json"
    finished.parent.mkdir(parents=True)
    finished.write_text('{"metrics": {"test/target_acc": 0.5}}')

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("syn2real.bench.zoo.run_cells", interrupt)
    assert (
        zoo_command(["--benchmark", "tiny", "--seeds", "0", "1", "--configs", str(configs), "--out", str(out)]) == 130
    )
    message = " ".join(capsys.readouterr().err.split())
    assert "interrupted: 1 finished run(s) are kept" in message and "Run the same command again to resume" in message
    assert finished.read_text() == '{"metrics": {"test/target_acc": 0.5}}'


def test_leaderboard_pairs_rows_seed_by_seed(tmp_path: Path) -> None:
    from syn2real.bench.runs import CellResult
    from syn2real.bench.zoo_pairs import Pairing
    from syn2real.bench.zoo_report import leaderboard, write_tables

    def run(name: str, seed: int, **metrics: float) -> CellResult:
        return CellResult(name, seed, "ok", {k.replace("__", "/"): v for k, v in metrics.items()}, 10.0, False)

    results = [run("source_only", 0, test__target_acc=0.6), run("source_only", 1, test__target_acc=0.8)]
    results += [run("dann", 0, test__target_acc=0.7), run("dann", 1, test__target_acc=0.85)]
    results += [run("dann", 2, test__target_acc=0.99)]  # no baseline run for seed 2: not in the difference
    results += [
        run("adabn", s, test__target_acc=a, test__target_acc_source_bn=b) for s, a, b in [(0, 0.7, 0.6), (1, 0.6, 0.7)]
    ]
    pairs = {
        "source_only": Pairing("reference", "baseline"),
        "adabn": Pairing("same_run", "{metric}_source_bn"),
        "dann": Pairing("baseline", "source_only"),
    }
    board = {r["method"]: r for r in leaderboard(results, "test/target_acc", pairs)}
    assert list(board) == ["source_only", "adabn", "dann"]  # the zoo config's order
    dann = board["dann"]["final_diff"]
    assert dann["diffs"] == pytest.approx([10.0, 5.0]) and dann["n"] == 2
    assert dann["mean"] == pytest.approx(7.5) and dann["std"] == pytest.approx(3.5355, abs=1e-3)
    assert dann["base_mean"] == pytest.approx(70.0)
    adabn = board["adabn"]["final_diff"]  # the same run's metric before re-estimation
    assert adabn["diffs"] == pytest.approx([10.0, -10.0]) and adabn["mean"] == pytest.approx(0.0)
    assert board["source_only"]["final_diff"] is None
    write_tables(tmp_path, results, list(board.values()), "test/target_acc", "tiny")
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "| dann | source_only | 84.7 ± 14.5 | 70.0 ± 14.1 | **+7.5 ± 3.5** (n=2) |" in markdown
    assert "| adabn | same run, target_acc_source_bn | 65.0 ± 7.1 | 65.0 ± 7.1 | **+0.0 ± 14.1** (n=2) |" in markdown
    assert "these numbers use the validation labels" in markdown
    with Image.open(tmp_path / "leaderboard.png") as png:
        assert png.size == (1000, int(100 * (0.45 * 3 + 1.6)))


def _tiny_digits(folder: Path, name: str, model: dict, data: dict, benchmark: str) -> None:
    """A tiny digits experiment with checkpoints (a refiner row needs the refiner's and the judge's)."""
    cfg = {"seed_everything": 0, "trainer": tiny_trainer_config(), "model": model, "data": data}
    (folder / "experiments").mkdir(parents=True, exist_ok=True)
    (folder / "experiments" / f"{name}__{benchmark}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.mark.timeout(400)
def test_a_refiner_row_trains_the_task_on_its_refined_renders_paired_with_raw_and_judged(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    task = {"class_path": "syn2real.tasks.TaskModule", "init_args": {"network": {"width": 4}}}
    real = lambda split, **kw: {"class_path": "datamodules.RealDigitsSource", "init_args": {"split": split, **kw}}  # noqa: E731
    renders = {"class_path": "datamodules.DigitsSimulatorSource", "init_args": {"num_samples": 40, "seed": 0}}
    tasks = lambda train: {  # noqa: E731
        "class_path": "datamodules.TaskDataModule",
        "init_args": {"train": [train], "val": real("val"), "test": real("test"), "batch_size": 16},
    }
    cyclegan = yaml.safe_load((CONFIGS / "smoke" / "cyclegan.yaml").read_text())["model"]
    pair = {
        "class_path": "datamodules.DomainPairDataModule",
        "init_args": {"source": renders, "target": real("pool"), "val": real("val"), "batch_size": 4},
    }
    for bench in ("tiny", "tiny2"):  # two benchmarks in one invocation: each judged by its own oracle
        _tiny_digits(configs, "source_only", task, tasks(renders), bench)
        _tiny_digits(configs, "target_oracle", task, tasks(real("pool", use_labels=True)), bench)
        _tiny_digits(configs, "cyclegan", cyclegan, pair, bench)
    (configs / "bench").mkdir()
    rows = {"source_only": {"reference": "baseline"}, "target_oracle": {"reference": "ceiling"}}
    rows["cyclegan"] = {"refines": "source_only"}
    zoo = {"seeds": [0, 1], "judge": "target_oracle", "rows": rows}
    (configs / "bench" / "zoo.yaml").write_text(yaml.safe_dump(zoo))
    out = tmp_path / "zoo"
    common = ["--configs", str(configs), "--out", str(out), "--jobs", "2"]
    assert zoo_command(["--benchmark", "tiny", "tiny2", "--methods", "cyclegan", *common]) == 0

    names = {"source_only", "target_oracle", "cyclegan", "cyclegan:refiner"}
    for bench in ("tiny", "tiny2"):
        runs = {(r["name"], r["seed"]): r for r in csv.DictReader((out / bench / "results.csv").open())}
        assert set(runs) == {(n, s) for n in names for s in ("0", "1")}  # the refiner brings its baseline and judge
        data = yaml.safe_load((out / bench / "cyclegan" / "refined_data" / "seed1.yaml").read_text())
        (train,) = data["init_args"]["train"]
        assert train["class_path"] == "syn2real.refined_source.RefinedSource"
        assert train["init_args"]["source"] == renders  # the baseline's renders, exactly
        refiner = out / bench / "cyclegan" / "refiner" / "seed1" / "checkpoints" / "last.ckpt"
        assert train["init_args"]["checkpoint"] == str(refiner)
        config = yaml.safe_load((out / bench / "cyclegan" / "seed1" / "config.yaml").read_text())
        assert config["model"]["class_path"] == "syn2real.tasks.TaskModule"  # the task row's model, refined data
        (trained,) = config["data"]["init_args"]["train"]  # the task run really trained on the refined renders
        assert trained["class_path"] == train["class_path"]
        assert trained["init_args"]["checkpoint"] == str(refiner)
        for seed in ("0", "1"):
            judged = json.loads((out / bench / "cyclegan" / f"seed{seed}" / "label_preservation.json").read_text())
            assert judged["images"] == 40 and 0 <= judged["raw"] <= 1 and 0 <= judged["refined"] <= 1
            assert judged["judge"] == str(out / bench / "target_oracle" / f"seed{seed}" / "checkpoints" / "last.ckpt")
            assert judged["refiner"] == str(
                out / bench / "cyclegan" / "refiner" / f"seed{seed}" / "checkpoints" / "last.ckpt"
            )
            assert float(runs[("cyclegan", seed)]["label_preservation/refined"]) == judged["refined"]
        board = {b["method"]: b for b in json.loads((out / bench / "results.json").read_text())["leaderboard"]}
        assert list(board).index("cyclegan:refiner") == list(board).index("cyclegan") + 1
        diff = board["cyclegan"]["final_diff"]
        acc = {key: float(run["test/target_acc"]) for key, run in runs.items() if key[0] in ("cyclegan", "source_only")}
        expected = [100 * (acc[("cyclegan", s)] - acc[("source_only", s)]) for s in ("0", "1")]
        assert diff["n"] == 2 and diff["diffs"] == pytest.approx(expected)
        markdown = (out / bench / "leaderboard.md").read_text()
        assert "| cyclegan | source_only on raw renders |" in markdown
        assert "| cyclegan | " in markdown.split("Label preservation")[1]

    # a later run of a subset keeps every finished run in the tables, label preservation included
    before = json.loads((out / "tiny" / "results.json").read_text())["leaderboard"]
    assert zoo_command(["--benchmark", "tiny", "--methods", "source_only", *common]) == 0
    after = json.loads((out / "tiny" / "results.json").read_text())["leaderboard"]
    assert [(b["method"], b["runs"], b["preservation_refined"]) for b in after] == [
        (b["method"], b["runs"], b["preservation_refined"]) for b in before
    ]

    # a retrained refiner makes its task run stale: it runs again, the old one is set aside
    refiner_done = out / "tiny" / "cyclegan" / "refiner" / "seed1" / "results.json"
    later = refiner_done.stat().st_mtime + 60
    os.utime(refiner_done, (later, later))
    assert zoo_command(["--benchmark", "tiny", "--methods", "cyclegan", *common]) == 0
    reused = {(r["name"], r["seed"]): r["reused"] for r in csv.DictReader((out / "tiny" / "results.csv").open())}
    assert reused[("cyclegan", "1")] == "False" and reused[("cyclegan", "0")] == "True"
    assert (out / "tiny" / "cyclegan" / "seed1.stale" / "results.json").is_file()


def test_a_method_holding_a_refiner_is_judged_on_a_task_rows_renders(tmp_path: Path) -> None:
    from syn2real.bench.zoo import zoo_cells
    from syn2real.bench.zoo_pairs import load_zoo_config

    configs = tmp_path / "configs"
    for name in ("source_only", "target_oracle", "pixelda"):
        _tiny(name, configs)
    path = configs / "bench" / "zoo.yaml"
    path.parent.mkdir(parents=True)
    rows = {"source_only": {"reference": "baseline"}, "target_oracle": {"reference": "ceiling"}}
    rows["pixelda"] = {"baseline": "source_only", "label_preservation": "source_only"}
    path.write_text(yaml.safe_dump({"seeds": [0, 1], "judge": "target_oracle", "rows": rows}))
    zoo = load_zoo_config(path)
    out = tmp_path / "out"
    cells = zoo_cells("tiny", [0, 1], out, ["pixelda"], False, [], configs / "experiments", zoo, path)
    assert {(c.name, c.seed) for c in cells} == {
        (n, s) for n in ("pixelda", "source_only", "target_oracle") for s in (0, 1)
    }
    for (
        cell
    ) in cells:  # its own checkpoint is the refiner judged (by the oracle, brought along) on source-only's renders
        if cell.name == "pixelda":
            assert cell.tags["refiner_checkpoint"] == str(
                out / "pixelda" / f"seed{cell.seed}" / "checkpoints" / "last.ckpt"
            )
            assert cell.tags["task_experiment"] == str(configs / "experiments" / "source_only__tiny.yaml")
        else:
            assert "refiner_checkpoint" not in cell.tags
    rows["pixelda"]["label_preservation"] = "nope"
    path.write_text(yaml.safe_dump({"seeds": [0, 1], "rows": rows}))
    with pytest.raises(ValueError, match="on 'nope''s renders, which is not a row"):
        load_zoo_config(path)
    rows["pixelda"] = {"baseline": "source_only", "colour": "blue"}
    path.write_text(yaml.safe_dump({"seeds": [0, 1], "rows": rows}))
    with pytest.raises(ValueError, match="optionally label_preservation"):
        load_zoo_config(path)


def test_a_segmentation_benchmark_brings_its_judge_and_judges_its_refiners_per_pixel(tmp_path: Path) -> None:
    from syn2real.bench.zoo import zoo_cells
    from syn2real.bench.zoo_pairs import load_zoo_config

    configs = tmp_path / "configs"
    for name in ("source_only", "target_oracle", "cycada"):
        _tiny(name, configs)
        tiny = configs / "experiments" / f"{name}__tiny.yaml"
        tiny.rename(tiny.with_name(f"{name}__digits-scenes.yaml"))  # only the name matters to the cell list
    path = configs / "bench" / "zoo.yaml"
    path.parent.mkdir(parents=True)
    rows = {"source_only": {"reference": "baseline"}, "target_oracle": {"reference": "ceiling"}}
    rows["cycada"] = {"baseline": "source_only", "label_preservation": "source_only"}
    path.write_text(yaml.safe_dump({"seeds": [0], "judge": "target_oracle", "rows": rows}))
    zoo = load_zoo_config(path)
    cells = zoo_cells("digits-scenes", [0], tmp_path / "out", ["cycada"], False, [], configs / "experiments", zoo, path)
    assert {c.name for c in cells} == {"cycada", "source_only", "target_oracle"}  # the oracle segmenter judges
    (cycada,) = [c for c in cells if c.name == "cycada"]
    assert cycada.tags["refiner_checkpoint"] == str(cycada.folder / "checkpoints" / "last.ckpt")
    assert cycada.tags["task_experiment"].endswith("source_only__digits-scenes.yaml")

    # the leaderboard's per-pixel table: mIoU raw / refined, their paired difference, what the judge finds and names
    from syn2real.bench.runs import CellResult
    from syn2real.bench.zoo_report import leaderboard, markdown

    def run(name: str, seed: int, miou: float, judged: dict[str, float] | None = None) -> CellResult:
        metrics = {"test/target_miou": miou, **{f"label_preservation/{k}": v for k, v in (judged or {}).items()}}
        return CellResult(name, seed, "ok", metrics, 1.0, False, tags={"family": "refinement"})

    kinds = ("raw", "refined", "foreground_recall_raw", "foreground_recall_refined", "naming_raw", "naming_refined")
    results = [
        run("source_only", 0, 0.10),
        run("source_only", 1, 0.12),
        run("cycada", 0, 0.15, dict(zip(kinds, (0.30, 0.40, 0.5, 0.6, 0.7, 0.8), strict=True))),
        run("cycada", 1, 0.16, dict(zip(kinds, (0.32, 0.38, 0.5, 0.6, 0.7, 0.8), strict=True))),
    ]
    board = leaderboard(results, "test/target_miou", {name: zoo.rows[name] for name in ("source_only", "cycada")})
    gain = {b["method"]: b["preservation_gain"] for b in board}["cycada"]
    assert gain["n"] == 2 and gain["mean"] == pytest.approx(8.0) and gain["std"] == pytest.approx(2.828, abs=1e-3)
    table = markdown(board, "test/target_miou", "t").split("Label preservation")[1]
    assert "mIoU against their label maps" in table
    assert "| cycada | 31.0 ± 1.4 | 39.0 ± 1.4 | **+8.0 ± 2.8** (n=2) | 50.0 ± 0.0 | 60.0 ± 0.0 | 70.0 ± 0.0 |" in table


def test_a_run_cut_off_while_its_real_val_still_rose_is_marked_still_rising(tmp_path: Path) -> None:
    from syn2real.bench.runs import Cell, finished_results, last_epoch_gains
    from syn2real.bench.zoo_pairs import Pairing
    from syn2real.bench.zoo_report import leaderboard, markdown

    def run_folder(name: str, seed: int, curve: list[float]) -> Cell:
        folder = tmp_path / name / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps({"metrics": {"test/target_acc": curve[-1]}}))
        lines = ["epoch,step,train/loss,val/loss,val/target_acc"]  # the CSVLogger's layout: train rows between
        lines += [f"{e},{10 * e + 5},0.5,," for e in range(len(curve))]
        lines += [f"{e},{10 * e + 9},,1.0,{v}" for e, v in enumerate(curve)]
        (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
        return Cell(name, seed, folder, [])

    # the last epoch against the best earlier one: 0.40 - 0.30 = +0.10; a plateau's noise reads as a loss
    assert last_epoch_gains(run_folder("x", 0, [0.2, 0.3, 0.25, 0.4]).folder / "metrics.csv") == {
        "val_last_gain/target_acc": pytest.approx(0.10)
    }
    assert last_epoch_gains(tmp_path / "absent.csv") == {}
    assert last_epoch_gains(run_folder("x", 1, [0.3]).folder / "metrics.csv") == {}  # one epoch: no curve

    cells = [run_folder("source_only", s, c) for s, c in [(0, [0.50, 0.60, 0.61]), (1, [0.55, 0.62, 0.60])]]
    cells += [run_folder("asg", s, c) for s, c in [(0, [0.40, 0.50, 0.53]), (1, [0.40, 0.52, 0.54])]]
    results = finished_results(cells)  # the zoo reads the curve of every finished run
    assert results[2].metrics["val_last_gain/target_acc"] == pytest.approx(0.03)
    pairs = {"source_only": Pairing("reference", "baseline"), "asg": Pairing("baseline", "source_only")}
    board = {r["method"]: r for r in leaderboard(results, "test/target_acc", pairs)}
    assert board["asg"]["rising"] and board["asg"]["last_gain"] == (pytest.approx(2.5), pytest.approx(0.7071, 1e-3))
    assert not board["source_only"]["rising"]  # +1.0 and -2.0 points: converged
    assert not board["asg"]["baseline_rising"] and not board["source_only"]["baseline_rising"]
    flipped = {"source_only": Pairing("baseline", "asg"), "asg": Pairing("reference", "baseline")}
    assert {r["method"]: r["baseline_rising"] for r in leaderboard(results, "test/target_acc", flipped)} == {
        "source_only": True,  # its baseline still rose: the difference is no claim either
        "asg": False,
    }
    table = markdown(list(board.values()), "test/target_acc", "tiny")
    assert "| +2.5 ± 0.7 **still rising** |" in table and "| -0.5 ± 2.1 |" in table
    assert "pointers, not claims" in table


def test_a_control_brings_the_row_it_controls_and_that_rows_baseline(tmp_path: Path) -> None:
    from syn2real.bench.zoo import zoo_cells
    from syn2real.bench.zoo_pairs import load_zoo_config

    configs = tmp_path / "configs"
    for name in ("source_only", "target_oracle", "dann", "dann_control"):
        _tiny(name, configs)
    rows = {"source_only": {"reference": "baseline"}, "target_oracle": {"reference": "ceiling"}}
    rows |= {"dann": {"baseline": "source_only"}, "dann_control": {"baseline": "dann"}}
    _pairs(configs, rows)
    path = configs / "bench" / "zoo.yaml"
    cells = zoo_cells(
        "tiny",
        [0, 1],
        tmp_path / "out",
        ["dann_control"],
        False,
        [],
        configs / "experiments",
        load_zoo_config(path),
        path,
    )
    assert {c.name for c in cells} == {"dann_control", "dann", "source_only"}  # not the unrelated oracle
