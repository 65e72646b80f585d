"""``syn2real bench zoo|schedules|speed``: the benchmarks (:mod:`syn2real.bench`) as commands."""

from __future__ import annotations

from rich.console import Console


def bench_command(argv: list[str]) -> int:
    """Dispatch ``syn2real bench <zoo|schedules|speed> ...``."""
    from syn2real.bench.schedules import schedules_command
    from syn2real.bench.speed import speed_command
    from syn2real.bench.zoo import zoo_command

    commands = {"zoo": zoo_command, "schedules": schedules_command, "speed": speed_command}
    if not argv or argv[0] not in commands:
        Console(stderr=True).print(f"usage: syn2real bench {{{','.join(commands)}}} [options]")
        return 2
    return commands[argv[0]](argv[1:])
