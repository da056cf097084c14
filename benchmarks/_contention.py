"""Busy cores for the benchmarks' ``--contention`` mode: a shared machine, on demand."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def busy_cores(on: bool) -> Iterator[int]:
    """With ``on``, one busy-loop process per core for the duration (at normal priority,
    as tests/load/run_under_contention.sh starts them); yields how many run."""
    loops: list[subprocess.Popen[bytes]] = []
    if on:
        for _ in range(os.cpu_count() or 1):
            loops.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
    try:
        yield len(loops)
    finally:
        for p in loops:
            p.kill()
        for p in loops:
            p.wait(timeout=10)
