# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The CI smoke of the parser fuzz harness, and the saved findings replayed (issue 15).

`make fuzz` runs a million coverage-guided inputs; here each target gets a few thousand
seeded mutations (the same every run), and every input a fuzz run ever saved under
tests/fuzz/crashes/ is replayed: each must end in the target's typed error or succeed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_engine import CRASH_DIR, Stats, execute, mutation_loop
from fuzz_targets import TARGETS

SMOKE_INPUTS = 2000  # per target, scaled by its weight (the costliest get at least 1,000)
SEED = 15


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_raises_only_typed_errors(name: str) -> None:
    runs = max(1000, int(SMOKE_INPUTS * TARGETS[name].weight))
    stats = mutation_loop(TARGETS[name], runs, SEED, crash_dir=None)
    assert stats.inputs == runs
    assert stats.findings == 0, f"untyped exceptions: see the FINDING lines on stderr ({stats})"
    assert stats.accepted > 0, "no input got through: the seeds no longer parse"
    assert stats.typed > 0, "no input was refused: the mutations do not reach the parser"


def _saved() -> list[Path]:
    return sorted(CRASH_DIR.glob("*.bin"))


@pytest.mark.parametrize("path", _saved(), ids=lambda p: p.stem)
def test_saved_finding_stays_fixed(path: Path) -> None:
    name = path.stem.split("__", 1)[0]
    stats = Stats(name)
    execute(TARGETS[name], path.read_bytes(), stats, crash_dir=None)
    assert stats.findings == 0
    assert stats.inputs == 1
