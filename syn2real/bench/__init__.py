"""Benchmarks as commands: the zoo leaderboard and the schedules benchmark, each cell a real ``syn2real fit`` run.

Part of the application layer (with :mod:`syn2real.cli`): the only code besides it that imports method families.
"""
