"""Simulator optimization: strategies that search the simulator's parameters ψ and write one stage dataset per step.

``syn2real optimize-sim`` (:mod:`syn2real.cli.optimize_sim`) drives a :class:`~syn2real.simopt.space.Renderer`
(the built-in digits simulator, or a user's own) with Meta-Sim (:mod:`~syn2real.simopt.metasim`), AutoSimulate
(:mod:`~syn2real.simopt.autosimulate`) or Learning-to-Simulate (:mod:`~syn2real.simopt.lts`); the run folder
(:mod:`~syn2real.simopt.run`) is what ``Syn2RealSource(stage: best)`` reads.
"""

from syn2real.simopt.base import StepOutcome, Strategy
from syn2real.simopt.run import StageRun, optimize
from syn2real.simopt.space import DigitsRenderer, RenderedBatch, Renderer, SearchSpace

__all__ = [
    "DigitsRenderer",
    "RenderedBatch",
    "Renderer",
    "SearchSpace",
    "StageRun",
    "StepOutcome",
    "Strategy",
    "optimize",
]
