from __future__ import annotations

from pathlib import Path

import pytest

from datamodules.errors import DatasetError
from datamodules.sources import Syn2RealSource
from datamodules.stages import select_stages
from tests.conftest import make_samples, write_dataset


@pytest.fixture
def run(tmp_path: Path) -> Path:
    for index, score in ((0, 0.2), (1, 0.9), (2, 0.5)):
        write_dataset(
            tmp_path / "run" / f"stage_{index:03d}",
            make_samples(2 + index),
            stage={"name": f"stage_{index:03d}", "index": index, "parameters": {}, "score": score},
        )
    return tmp_path / "run"


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("latest", ["stage_002"]),
        ("best", ["stage_001"]),
        ("all", ["stage_000", "stage_001", "stage_002"]),
        (1, ["stage_001"]),
        ("0", ["stage_000"]),
    ],
)
def test_stage_selection(run: Path, stage: str | int, expected: list[str]) -> None:
    assert [p.name for p in select_stages(run, stage)] == expected


def test_all_stages_concatenate_with_domain_per_stage(run: Path) -> None:
    ds = Syn2RealSource(root=str(run), stage="all", domain_per_stage=True).load()
    assert len(ds) == 2 + 3 + 4
    assert sorted({ds[i].domain for i in range(len(ds))}) == [0, 1, 2]


def test_num_samples_reads_the_first_samples_of_a_stage(run: Path) -> None:
    whole = Syn2RealSource(root=str(run), stage="latest").load()
    first = Syn2RealSource(root=str(run), stage="latest", num_samples=3).load()
    assert len(first) == 3 and first.classes == whole.classes
    assert [first[i].id for i in range(3)] == [whole[i].id for i in range(3)]
    assert first.labels() == whole.labels()[:3]
    with pytest.raises(DatasetError, match=r"holds 4 samples, num_samples asks for 5.*stage_samples"):
        Syn2RealSource(root=str(run), stage="latest", num_samples=5).load()
    with pytest.raises(DatasetError, match="would read the first stage only"):
        Syn2RealSource(root=str(run), stage="all", num_samples=2).load()
    with pytest.raises(ValueError, match="at least 1"):
        Syn2RealSource(root=str(run), num_samples=0)


def test_a_datamodule_on_all_stages_reports_one_domain_per_stage(run: Path) -> None:
    from datamodules.data_modules import TaskDataModule

    data = TaskDataModule(train=[Syn2RealSource(root=str(run), stage="all", domain_per_stage=True)], batch_size=2)
    data.setup("fit")
    assert data.training_domain_ids() == [0, 1, 2]


def test_stages_with_different_classes_are_refused(run: Path) -> None:
    write_dataset(
        run / "stage_003",
        make_samples(2),
        classes=["x", "y", "z"],
        stage={"name": "s3", "index": 3, "parameters": {}, "score": None},
    )
    with pytest.raises(DatasetError, match=r"stage_003/dataset\.json: class list \['x', 'y', 'z'\] differs"):
        select_stages(run, "all")


def test_unknown_stage_index_lists_the_indices(run: Path) -> None:
    with pytest.raises(DatasetError, match=r"no stage with index 7 \(stages: \[0, 1, 2\]\)"):
        select_stages(run, 7)


def test_folder_without_datasets(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no stage folders"):
        select_stages(tmp_path / "empty")
