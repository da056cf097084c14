"""``softmax_core.memory``: a batch's freed arrays are reused, not faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

from softmax_core import memory

_BATCHES = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from softmax_core.memory import reuse_freed_memory
    assert reuse_freed_memory()
def batch():
    arrays = [np.ones(250_000, np.float32) for _ in range(8)]  # a batch's temporaries, 8 MB
    del arrays
batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _BATCHES, mode], check=True, capture_output=True, text=True
    )
    return int(out.stdout)


@pytest.mark.skipif(not memory.is_glibc(), reason="glibc's allocator only (a no-op elsewhere)")
def test_freed_batch_memory_is_reused_instead_of_faulted_in_again() -> None:
    default, tuned = _faults("default"), _faults("tuned")
    # glibc's defaults give 8 MB back and fault it in again every batch (2,048 pages each)
    assert default > 20 * 1000
    assert tuned < 500


def test_set_where_batches_are_decoded_not_at_the_cli_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scoring in its own process (one worker) sets it, as every worker does at start
    (``pool._init_worker``); starting the CLI does not load the module at all."""
    from softmax_core.scoring import pool

    calls: list[str] = []
    monkeypatch.setattr(pool, "reuse_freed_memory", lambda: calls.append("set") or True)
    assert list(pool.score_batches([], None, workers=1)) == []  # type: ignore[arg-type]
    assert calls == ["set"]
    code = "import sys, softmax_pipe.cli; print('softmax_core.memory' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"
