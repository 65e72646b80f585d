from __future__ import annotations

import pytest
import torch

from datamodules.glyphs import SYMBOL_FONTS, digit_fonts
from datamodules.simulator import DigitsSimulator, DigitsSimulatorConfig


@pytest.fixture(scope="module")
def sim() -> DigitsSimulator:
    return DigitsSimulator(DigitsSimulatorConfig(size=16), seed=3)


def test_same_seed_and_index_give_the_same_sample(sim: DigitsSimulator) -> None:
    again = DigitsSimulator(DigitsSimulatorConfig(size=16), seed=3)
    a, b = sim.render(range(8)), again.render(range(8))
    assert torch.equal(a.images, b.images) and torch.equal(a.depth, b.depth) and a.params == b.params


def test_sample_does_not_depend_on_its_batch(sim: DigitsSimulator) -> None:
    alone = sim.render([5])
    in_batch = sim.render([9, 5, 2])
    assert torch.equal(alone.images[0], in_batch.images[1])
    assert torch.equal(alone.masks[0], in_batch.masks[1])


def test_other_seed_gives_other_samples(sim: DigitsSimulator) -> None:
    other = DigitsSimulator(DigitsSimulatorConfig(size=16), seed=4)
    assert not torch.equal(sim.render(range(4)).images, other.render(range(4)).images)


def test_outputs_follow_the_data_contract(sim: DigitsSimulator) -> None:
    out = sim.render(range(64))
    assert out.images.shape == (64, 1, 16, 16) and out.images.dtype == torch.float32
    assert out.images.min() >= 0 and out.images.max() <= 1
    assert set(out.masks.unique().tolist()) <= {0.0, 1.0} and out.masks.sum() > 0
    assert out.labels.min() >= 0 and out.labels.max() <= 9
    assert len(out.labels.unique()) == 10
    assert out.labels.tolist() == [p["digit"] for p in out.params]


def test_depth_is_a_relief_raised_where_the_digit_is(sim: DigitsSimulator) -> None:
    out = sim.render(range(16))
    plane_only = DigitsSimulator(DigitsSimulatorConfig(size=16, depth_relief=0.0), seed=3).render(range(16))
    relief = plane_only.depth - out.depth  # positive where the digit stands out of the plane
    assert (relief[out.masks.bool()] > 0.1).all()
    assert relief[~out.masks.bool()].mean() < relief[out.masks.bool()].mean()


def test_colour_mode_has_three_channels() -> None:
    out = DigitsSimulator(DigitsSimulatorConfig(size=16, channels=3), seed=0).render(range(4))
    assert out.images.shape == (4, 3, 16, 16)
    assert not torch.equal(out.images[:, 0], out.images[:, 1])


def test_font_list_holds_only_digit_fonts() -> None:
    fonts = digit_fonts()
    assert len(fonts) >= 10 and not SYMBOL_FONTS & set(fonts)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"scale": (0.9, 0.5)}, "scale range"),
        ({"fonts": ["NoSuchFont"]}, "unknown fonts"),
        ({"elastic": (0.2, 0.1)}, "elastic range"),
        ({"elastic_grid": 1}, "elastic_grid"),
    ],
)
def test_bad_config_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DigitsSimulator(DigitsSimulatorConfig(**kwargs))


def test_elastic_deformation_bends_the_glyph_and_changes_nothing_else() -> None:
    plain = DigitsSimulator(DigitsSimulatorConfig(size=16), seed=3)
    bent = DigitsSimulator(DigitsSimulatorConfig(size=16, elastic=(0.1, 0.1)), seed=3)
    a, b = plain.render(range(8)), bent.render(range(8))
    assert torch.equal(a.labels, b.labels)
    drop = {"elastic", "elastic_seed"}
    assert [{k: v for k, v in p.items() if k not in drop} for p in a.params] == [
        {k: v for k, v in p.items() if k not in drop} for p in b.params
    ]  # the knob draws after every other parameter: the rest of ψ is the same sample's
    assert all(p["elastic"] == 0.0 for p in a.params) and all(p["elastic"] == pytest.approx(0.1) for p in b.params)
    moved = (a.masks != b.masks).flatten(1).float().mean(1)
    assert bool((moved > 0).all())  # every glyph bends, and its mask and depth relief follow it
    assert not torch.equal(a.depth, b.depth)
    assert torch.equal(bent.render([5]).images[0], b.images[5])  # still a pure function of (seed, index)
