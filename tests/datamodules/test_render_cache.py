"""The render cache: the same tensors as rendering, one file per (renderer, ψ, seed, count, code), safe on failure."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import datamodules.render_cache as render_cache
from datamodules.digit_scenes import RenderedDigitScenesSource
from datamodules.simulator import DigitsSimulator, DigitsSimulatorConfig
from datamodules.sources import DigitsSimulatorSource


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(render_cache.ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _tensors(dataset) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    return [dataset.images, dataset.label_tensor, dataset.masks, dataset.depth]


def test_a_second_load_reads_the_same_renders_without_rendering(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = DigitsSimulatorSource(num_samples=40, seed=3)
    first = source.load()
    assert len(list(cache.glob("digits-*.pt"))) == 1
    fresh = source.render()  # what rendering gives, without the cache
    assert all(torch.equal(a, b) for a, b in zip(_tensors(first), fresh.values(), strict=True))

    def no_render(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered although cached")

    monkeypatch.setattr(DigitsSimulator, "render", no_render)
    second = source.load()
    assert all(torch.equal(a, b) for a, b in zip(_tensors(first), _tensors(second), strict=True))
    assert (
        second.label_tensor is not None
        and DigitsSimulatorSource(num_samples=40, seed=3, use_labels=False).load().label_tensor is None
    )  # use_labels applies to cached renders too


def test_every_input_of_the_renders_is_in_the_key(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    DigitsSimulatorSource(num_samples=8, seed=0).load()
    DigitsSimulatorSource(num_samples=8, seed=1).load()
    DigitsSimulatorSource(num_samples=9, seed=0).load()
    DigitsSimulatorSource(num_samples=8, seed=0, config=DigitsSimulatorConfig(blur=(0.0, 0.5))).load()
    assert len(list(cache.glob("digits-*.pt"))) == 4
    key = render_cache.cache_key("digits", {"seed": 0})
    monkeypatch.setattr(render_cache, "_code_digest", lambda: "another simulator version")
    assert render_cache.cache_key("digits", {"seed": 0}) != key  # a changed simulator renders afresh


def test_a_damaged_file_is_rendered_again_and_replaced(cache: Path) -> None:
    source = DigitsSimulatorSource(num_samples=8, seed=0)
    first = source.load()
    (path,) = cache.glob("digits-*.pt")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match="unreadable"):
        again = source.load()
    assert torch.equal(again.images, first.images)
    assert torch.equal(render_cache._restore(torch.load(path, weights_only=True))["images"], first.images)  # replaced
    assert not list(cache.glob(".*partial"))


def test_off_and_unwritable_caches_still_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(render_cache.ENV, "off")
    assert render_cache.cache_dir() is None
    assert len(DigitsSimulatorSource(num_samples=4).load()) == 4
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(render_cache.ENV, str(blocker / "cache"))
    with pytest.warns(UserWarning, match="not writable"):
        assert len(DigitsSimulatorSource(num_samples=4).load()) == 4
    monkeypatch.setenv(render_cache.ENV, str(tmp_path / "full"))

    def disk_full(*args: object, **kwargs: object) -> None:
        raise RuntimeError("No space left on device")  # how torch.save reports it

    monkeypatch.setattr(render_cache.torch, "save", disk_full)
    with pytest.warns(UserWarning, match="No space left"):
        assert len(DigitsSimulatorSource(num_samples=4).load()) == 4
    assert not list((tmp_path / "full").iterdir())  # no partial file left behind


def test_rendered_scenes_are_cached_too(cache: Path) -> None:
    source = RenderedDigitScenesSource(num_samples=3, seed=0)
    first, second = source.load(), source.load()
    assert len(list(cache.glob("digit-scenes-*.pt"))) == 1
    assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(_tensors(first), _tensors(second), strict=True))
    stored = torch.load(next(cache.glob("digit-scenes-*.pt")), weights_only=True)
    assert stored["labels"]["data"].dtype == torch.uint8  # label maps (0-10, ignore 255) stored compactly
