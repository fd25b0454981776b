# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Running inputs through a target and keeping score (shared by `make fuzz` and the smoke test).

Two engines feed `execute`:
- atheris (libFuzzer, coverage-guided on the instrumented Python bytecode), used by
  `make fuzz` when it is installed (the dev extra installs it on Linux x86_64, CPython 3.11);
- a seeded byte mutator (tests/fuzz_mutations.py) over the seeds and the inputs the parser
  accepted, used by the CI smoke test and as the fallback.
"""

from __future__ import annotations

import hashlib
import json
import random
import resource
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fuzz_targets import Target

HANG_SECONDS = 1.0
CRASH_DIR = Path(__file__).resolve().parent / "crashes"


@dataclass
class Stats:
    """What one target's run found; `make fuzz` prints one row of it per target."""

    target: str
    engine: str = ""
    inputs: int = 0
    accepted: int = 0
    typed: int = 0
    findings: int = 0
    hangs: int = 0
    slowest_s: float = 0.0  # CPU seconds of the costliest input (the machine is shared)
    slowest_wall_s: float = 0.0
    slowest_len: int = 0
    slowest_sha1: str = ""
    baseline_rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    coverage: str = "n/a"
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    finding_files: list[str] = field(default_factory=list)

    def dump(self, path: Path) -> None:
        """Write the stats as JSON (the worker's report to `make fuzz`)."""
        self.peak_rss_mib = peak_rss_mib()
        path.write_text(json.dumps(asdict(self)))


def peak_rss_mib() -> float:
    """The process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def execute(tgt: Target, data: bytes, stats: Stats, crash_dir: Path | None = CRASH_DIR) -> None:
    """Run one input; count it as accepted, typed error, finding (untyped) or hang.

    Cost is the process's CPU time for the input: wall time on a shared machine also
    counts other processes. Both are kept; a hang is over 1 s of CPU.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        tgt.run(data)
    except tgt.typed as exc:
        stats.typed += 1
        name = type(exc).__name__
        stats.errors[name] = stats.errors.get(name, 0) + 1
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # the finding itself: anything not typed, panics included
        stats.findings += 1
        _save_finding(tgt, data, exc, stats, crash_dir)
    else:
        stats.accepted += 1
    elapsed = time.process_time() - cpu_start
    stats.slowest_wall_s = max(stats.slowest_wall_s, time.perf_counter() - start)
    stats.inputs += 1
    if elapsed > HANG_SECONDS:
        stats.hangs += 1
    if elapsed > stats.slowest_s:
        stats.slowest_s = elapsed
        stats.slowest_len = len(data)
        stats.slowest_sha1 = hashlib.sha1(data).hexdigest()[:12]


def _save_finding(
    tgt: Target, data: bytes, exc: BaseException, stats: Stats, crash_dir: Path | None
) -> None:
    digest = hashlib.sha1(data).hexdigest()[:16]
    summary = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:200]}"
    print(f"FINDING {tgt.name} {digest}: {summary}", file=sys.stderr)
    if crash_dir is None:
        return
    crash_dir.mkdir(parents=True, exist_ok=True)
    path = crash_dir / f"{tgt.name}__{digest}.bin"
    path.write_bytes(data)
    trace = "".join(traceback.format_exception(exc))
    path.with_suffix(".txt").write_text(f"{summary}\n\n{trace}")
    if len(stats.finding_files) < 20:
        stats.finding_files.append(path.name)


def warm_up(tgt: Target) -> None:
    """Run the seeds once, uncounted: the targets import their parsers lazily."""
    for seed in tgt.seeds():
        execute(tgt, seed[: tgt.max_len], Stats(tgt.name), crash_dir=None)


def mutation_loop(
    tgt: Target, runs: int, seed: int, crash_dir: Path | None = CRASH_DIR, pool_size: int = 64
) -> Stats:
    """Run `runs` mutated inputs (seeds first) through `tgt` with a fixed random seed.

    Inputs the parser accepts join the pool mutated from, so mutations reach past the
    first checks (a cheap stand-in for coverage feedback).
    """
    from fuzz_mutations import mutate

    stats = Stats(tgt.name, engine="mutate")
    warm_up(tgt)
    stats.baseline_rss_mib = peak_rss_mib()
    rng = random.Random(seed)
    seeds = [s[: tgt.max_len] for s in tgt.seeds()]
    pool = list(seeds)
    start = time.perf_counter()
    for i in range(runs):
        data = seeds[i] if i < len(seeds) else mutate(rng, rng.choice(pool))[: tgt.max_len]
        before = stats.accepted
        execute(tgt, data, stats, crash_dir)
        if stats.accepted > before and len(pool) < pool_size:
            pool.append(data)
    stats.seconds = time.perf_counter() - start
    stats.peak_rss_mib = peak_rss_mib()
    return stats
