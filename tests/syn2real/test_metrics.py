"""``foreground_errors``: finding the foreground and naming it, on fixed maps with ignored pixels."""

from __future__ import annotations

import math

import torch

from syn2real.batch import IGNORE_INDEX
from syn2real.metrics import foreground_errors


def test_foreground_errors_on_a_fixed_map_leave_ignored_pixels_out() -> None:
    labels = torch.tensor([[[0, 0, 3, 3], [5, 5, IGNORE_INDEX, 0]]])
    pred = torch.tensor([[[0, 4, 3, 3], [5, 0, 7, 0]]])  # the ignored pixel's 7 does not count
    errors = foreground_errors(pred, labels)
    # truth ink {(0,2), (0,3), (1,0), (1,1)}; said ink {(0,1), (0,2), (0,3), (1,0)}; found 3 of 4, 5 in the union
    assert errors["foreground_iou"] == 3 / 5
    assert errors["foreground_recall"] == 3 / 4
    assert errors["naming_accuracy"] == 1.0  # every found pixel got its own class
    wrong = pred.clone()
    wrong[0, 0, 2] = 9
    assert math.isclose(foreground_errors(wrong, labels)["naming_accuracy"], 2 / 3, rel_tol=1e-6)
    assert foreground_errors(torch.zeros_like(labels), labels)["foreground_iou"] == 0.0
    empty = foreground_errors(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    assert all(math.isnan(v) for v in empty.values())  # no ink anywhere: nothing to share
