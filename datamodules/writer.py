"""Writing syn2real datasets: streaming, atomic (temporary folder + rename), never over existing data unless told.

A dataset streams into a hidden sibling ``.<name>.partial-*`` folder that is renamed to ``<name>`` when the writer
closes. An exception, Ctrl-C or SIGTERM (what ``timeout``, schedulers and container stops send) removes it; a
partial folder left by a killed process (SIGKILL, power loss) is removed by the next writer of the same ``<name>``
once its process is gone. ``--overwrite`` replaces only a syn2real dataset (a folder with ``dataset.json``), never
any other folder. Written folders get the permissions the umask gives a new folder.

Batches are converted to 8-bit arrays in one operation each and their files written by ``workers`` threads (PNG
encoding and file writes release the GIL), while the caller renders or refines the next batch; the sample table is
written in the caller's order, and the bytes are those of one worker. Files that a batch passes as paths (masks,
depth or label maps an export does not change) are hard-linked (copied where the filesystem cannot link) instead of
being decoded and encoded again: the same bytes, none written; edit neither dataset's files in place.
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
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np
import torch
from PIL import Image

from datamodules.errors import DatasetError
from datamodules.format import COLUMNS, DatasetInfo
from datamodules.imageio import uint8_images
from syn2real.batch import Sample

PID_FILE = ".writer.pid"


def _save_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def _link_or_copy(source: Path, path: Path) -> None:
    """A hard link to an unchanged file (no bytes written); a byte-for-byte copy where linking is not possible."""
    try:
        os.link(source, path)
    except OSError:  # another filesystem, or one without hard links
        shutil.copyfile(source, path)


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
        workers: threads writing files (1 = in the caller's thread); the output is the same bytes for any count.

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

    def __init__(self, out: str | Path, info: DatasetInfo, *, overwrite: bool = False, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.out = Path(out)
        self.info = info
        self.overwrite = overwrite
        prepare_output(self.out, overwrite=overwrite)
        self._tmp: Path | None = None
        self._count = 0
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[list[Future[Any]]] = deque()  # the file writes of each batch still in flight
        self._batch: list[Future[Any]] = []

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
        if self.workers > 1:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="syn2real-writer")
        return self

    def add(self, sample: Sample, params: dict[str, Any] | None = None) -> None:
        """Write one sample's files and its row."""
        sid = sample.id or f"{self._count:07d}"

        def one(x: Any) -> Any:
            return None if x is None else [x] if isinstance(x, Path) else x.unsqueeze(0)

        self.add_batch(
            ids=[sid],
            images=sample.image.unsqueeze(0),
            labels=one(sample.label),
            masks=one(sample.mask),
            depth=one(sample.depth),
            params=None if params is None else [params],
        )

    def add_batch(
        self,
        *,
        ids: list[str],
        images: torch.Tensor,
        labels: Any = None,
        masks: Any = None,
        depth: Any = None,
        params: list[dict[str, Any]] | None = None,
    ) -> None:
        """Write a batch: sample ``k`` is ``ids[k]``, ``images[k]`` and the ``k``-th of each given modality.

        ``images`` is ``N×C×H×W`` in [0, 1]; ``masks`` and ``depth`` are ``N×1×H×W`` tensors, segmentation
        ``labels`` ``N×H×W``; each of these three may instead be a list of existing files, linked or copied as they
        are (an export that does not change them). The arrays handed to the writer threads are copies: the caller
        may reuse its tensors at once.
        """
        assert self._tmp is not None, "use DatasetWriter as a context manager"
        self._check_batch(ids, images, labels, masks, depth)
        arrays = {"image": uint8_images(images), "label": labels, "mask": masks, "depth": depth}
        size = (len(ids), *self.info.size)
        if self.info.labels and self.info.task == "segmentation" and not isinstance(labels, list):
            arrays["label"] = np.array(labels.detach().to(torch.uint8).cpu().numpy(), copy=True)
        if self.info.masks and not isinstance(masks, list):
            arrays["mask"] = (masks.detach().reshape(size) > 0.5).to(torch.uint8).mul(255).cpu().numpy()
        if self.info.depth and not isinstance(depth, list):
            arrays["depth"] = np.array(depth.detach().reshape(size).float().cpu().numpy(), copy=True)
        for k, sid in enumerate(ids):
            row = {"id": sid, "image": f"images/{sid}.png", "label": "", "mask": "", "depth": "", "params": ""}
            self._write(_save_png, self._tmp / row["image"], arrays["image"][k])
            if self.info.labels and self.info.task == "classification":
                row["label"] = str(int(labels[k]))
            elif self.info.labels:
                row["label"] = self._file_of(sid, "labels", ".png", arrays["label"][k])
            if self.info.masks:
                row["mask"] = self._file_of(sid, "masks", ".png", arrays["mask"][k])
            if self.info.depth:
                row["depth"] = self._file_of(sid, "depth", ".npy", arrays["depth"][k])
            if params is not None and params[k]:
                row["params"] = json.dumps(params[k], sort_keys=True)
            self._csv.writerow([row[c] for c in COLUMNS])
            self._count += 1
        self._end_batch()

    def _check_batch(self, ids: list[str], images: torch.Tensor, labels: Any, masks: Any, depth: Any) -> None:
        for sid in ids:
            if "/" in sid or "\\" in sid:
                raise ValueError(f"sample id {sid!r} may not contain path separators")
        shape = tuple(images.shape[1:])
        if shape != (self.info.channels, *self.info.size):
            raise ValueError(
                f"sample {ids[0]!r} image has shape {shape}, the dataset is {(self.info.channels, *self.info.size)}"
            )
        if self.info.labels and labels is None:
            raise ValueError(f"sample {ids[0]!r} has no label but the dataset is labeled")
        for flag, given, what in ((self.info.masks, masks, "mask"), (self.info.depth, depth, "depth")):
            if flag and given is None:
                raise ValueError(f"sample {ids[0]!r} has no {what} but the dataset lists {what} as a modality")

    def _file_of(self, sid: str, folder: str, suffix: str, content: Any) -> str:
        """Write (or copy, when ``content`` is a path) one sample's file of ``folder``; its path in the table."""
        assert self._tmp is not None
        if isinstance(content, Path):
            rel = f"{folder}/{sid}{content.suffix}"  # the parent's format, whatever it is
            self._write(_link_or_copy, content, self._tmp / rel)
            return rel
        rel = f"{folder}/{sid}{suffix}"
        if suffix == ".npy":
            self._write(np.save, self._tmp / rel, content)
        else:
            self._write(_save_png, self._tmp / rel, content)
        return rel

    def _write(self, function: Callable[..., Any], *args: Any) -> None:
        """Run one file write now (one worker) or queue it on the thread pool as part of the current batch."""
        if self._pool is None:
            function(*args)
        else:
            self._batch.append(self._pool.submit(function, *args))

    def _end_batch(self) -> None:
        """Close the current batch's writes, re-raise any failed one, wait while over 2 × workers batches are queued.

        Memory held by queued writes is bounded by batches, not by files.
        """
        if self._pool is None:
            return
        self._pending.append(self._batch)
        self._batch = []
        for batch in self._pending:
            for future in batch:
                if future.done() and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
        while len(self._pending) > 2 * self.workers:
            for future in self._pending.popleft():
                future.result()

    def _drain(self) -> None:
        self._pending.append(self._batch)
        self._batch = []
        while self._pending:
            for future in self._pending.popleft():
                future.result()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tmp is not None
        try:
            if self._pool is not None:
                try:
                    if exc_type is None:
                        self._drain()  # a failed write raises here; the partial folder is removed below
                finally:
                    self._pool.shutdown(wait=True, cancel_futures=True)
            self._file.close()
            if exc_type is None:
                self._finish()
        finally:
            self._file.close()
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
