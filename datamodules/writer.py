"""Writing syn2real datasets: streaming, atomic (temporary folder + rename), never over existing data unless told.

A dataset streams into a hidden sibling ``.<name>.partial-*`` folder that is renamed to ``<name>`` when the writer
closes. An exception, Ctrl-C or SIGTERM (what ``timeout``, schedulers and container stops send) removes it; a
partial folder left by a killed process (SIGKILL, power loss) is removed by the next writer of the same ``<name>``
once its process is gone. ``--overwrite`` replaces only a syn2real dataset (a folder with ``dataset.json``), never
any other folder. Written folders get the permissions the umask gives a new folder.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import threading
import uuid
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from datamodules.errors import DatasetError
from datamodules.format import COLUMNS, DatasetInfo
from datamodules.imageio import write_depth, write_image, write_label_map, write_mask
from syn2real.batch import Sample

PID_FILE = ".writer.pid"


def prepare_output(out: Path, *, overwrite: bool) -> None:
    """Refuse a non-empty output folder unless ``overwrite`` and it holds a syn2real dataset.

    Checked before any work starts, and again when a writer closes.
    """
    if out.exists() and not out.is_dir():
        raise DatasetError(out, "exists and is not a folder", "choose another --out path")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(out, "exists and is not empty", "choose another --out path or pass --overwrite")
        if not (out / "dataset.json").is_file():
            raise DatasetError(
                out,
                "is not a syn2real dataset (no dataset.json), so --overwrite will not replace it",
                "choose another --out path, or empty the folder yourself if its contents can go",
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def remove_stale_partials(out: Path) -> None:
    """Remove the ``.<name>.partial-*`` folders next to ``out`` whose writing process (on this host) no longer runs.

    ``out.name`` may be a glob pattern (``stage_*``: every stage of a run). A folder written from another host
    (shared disk) or without an owner file is left alone.
    """
    for partial in out.parent.glob(f".{out.name}.partial-*"):
        try:
            host, _, pid = (partial / PID_FILE).read_text().rpartition(":")
            dead = host == socket.gethostname() and not _alive(int(pid))
        except (OSError, ValueError):
            continue  # not one of ours, or still being created: leave it
        if dead:
            shutil.rmtree(partial, ignore_errors=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the writer's __exit__, which removes its partial folder


class DatasetWriter:
    """Write a syn2real dataset sample by sample; the folder appears only when the writer closes cleanly.

    Samples stream to a temporary sibling folder (nothing is held in memory); on success the folder is renamed to
    ``out``. On an exception the temporary folder is removed and ``out`` is untouched.

    Args:
        out: the dataset folder to create.
        info: the dataset header; ``num_samples`` is filled in on close.
        overwrite: replace an existing non-empty ``out``.

    Examples:
        >>> import torch, tempfile
        >>> from datamodules.format import Syn2RealDataset
        >>> root = Path(tempfile.mkdtemp()) / "ds"
        >>> info = DatasetInfo(task="classification", classes=["a", "b"], channels=1, size=(4, 4))
        >>> with DatasetWriter(root, info) as w:
        ...     w.add(Sample(image=torch.zeros(1, 4, 4), label=torch.tensor(1), id="s0"))
        >>> ds = Syn2RealDataset(root)
        >>> len(ds), int(ds[0].label)
        (1, 1)
    """

    def __init__(self, out: str | Path, info: DatasetInfo, *, overwrite: bool = False) -> None:
        self.out = Path(out)
        self.info = info
        self.overwrite = overwrite
        prepare_output(self.out, overwrite=overwrite)
        self._tmp: Path | None = None
        self._count = 0

    def __enter__(self) -> DatasetWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.out)
        self._tmp = self.out.parent / f".{self.out.name}.partial-{uuid.uuid4().hex[:12]}"
        self._tmp.mkdir()  # plain mkdir: permissions follow the umask (mkdtemp would give 0700)
        (self._tmp / PID_FILE).write_text(_owner())
        self._sigterm = None
        if threading.current_thread() is threading.main_thread():
            self._sigterm = signal.signal(signal.SIGTERM, _terminate)
        for sub in ("images", "masks", "depth", "labels"):
            (self._tmp / sub).mkdir()
        self._file = (self._tmp / "samples.csv").open("w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(COLUMNS)
        return self

    def add(self, sample: Sample, params: dict[str, Any] | None = None) -> None:
        """Write one sample's files and its row."""
        assert self._tmp is not None, "use DatasetWriter as a context manager"
        sid = sample.id or f"{self._count:07d}"
        if "/" in sid or "\\" in sid:
            raise ValueError(f"sample id {sid!r} may not contain path separators")
        shape = tuple(sample.image.shape)
        if shape != (self.info.channels, *self.info.size):
            raise ValueError(
                f"sample {sid!r} image has shape {shape}, the dataset is {(self.info.channels, *self.info.size)}"
            )
        row = {"id": sid, "image": f"images/{sid}.png", "label": "", "mask": "", "depth": "", "params": ""}
        write_image(self._tmp / row["image"], sample.image)
        if self.info.labels:
            if sample.label is None:
                raise ValueError(f"sample {sid!r} has no label but the dataset is labeled")
            if self.info.task == "classification":
                row["label"] = str(int(sample.label))
            else:
                row["label"] = f"labels/{sid}.png"
                write_label_map(self._tmp / row["label"], sample.label)
        if self.info.masks:
            row["mask"] = f"masks/{sid}.png"
            write_mask(self._tmp / row["mask"], sample.mask)
        if self.info.depth:
            row["depth"] = f"depth/{sid}.npy"
            write_depth(self._tmp / row["depth"], sample.depth)
        if params:
            row["params"] = json.dumps(params, sort_keys=True)
        self._csv.writerow([row[c] for c in COLUMNS])
        self._count += 1

    def add_batch(
        self,
        *,
        ids: list[str],
        images: Any,
        labels: Any = None,
        masks: Any = None,
        depth: Any = None,
        params: list[dict[str, Any]] | None = None,
    ) -> None:
        """Write a rendered batch: sample ``k`` is ``ids[k]``, ``images[k]`` and the ``k``-th of each given modality."""
        for k, sid in enumerate(ids):
            label, mask, plane, psi = (None if x is None else x[k] for x in (labels, masks, depth, params))
            self.add(Sample(image=images[k], label=label, mask=mask, depth=plane, id=sid), params=psi)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tmp is not None
        self._file.close()
        try:
            if exc_type is None:
                self._finish()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)  # gone after a rename; the partial folder otherwise
            if self._sigterm is not None:
                signal.signal(signal.SIGTERM, self._sigterm)

    def _finish(self) -> None:
        assert self._tmp is not None
        self.info.num_samples = self._count
        (self._tmp / "dataset.json").write_text(json.dumps(self.info.to_json(), indent=2) + "\n")
        (self._tmp / PID_FILE).unlink()
        old = None
        if self.out.exists():
            prepare_output(self.out, overwrite=self.overwrite)  # re-check: the folder may have appeared meanwhile
            old = self.out.with_name(f".{self.out.name}.replaced-{uuid.uuid4().hex[:12]}")
            self.out.rename(old)
        self._tmp.rename(self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
