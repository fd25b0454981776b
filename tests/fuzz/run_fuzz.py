# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`make fuzz`: fuzz every parser target, then print per-target counts (issue 15).

The parent splits `--total` inputs over the targets and runs one worker process per target,
`--jobs` at a time. Each worker fuzzes its target with atheris (libFuzzer, coverage-guided)
when it is installed, else with the seeded mutator, and reports a JSON `Stats`. The table
shows inputs, outcomes, findings (untyped exceptions, saved under tests/fuzz/crashes/ as
regression inputs), inputs over 1 s, the slowest input, coverage and peak RSS.

Exit status 1 when any target has a finding, a hang, or a peak RSS over `--max-rss-mib`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from fuzz_engine import Stats, execute, mutation_loop, peak_rss_mib, warm_up  # noqa: E402
from fuzz_targets import SKIPPED, TARGETS, Target  # noqa: E402

_COV = re.compile(r"cov: (\d+) ft: (\d+)")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--total", type=int, default=1_000_000, help="inputs over all targets")
    p.add_argument("--jobs", type=int, default=2, help="workers at once")
    p.add_argument("--engine", choices=["auto", "atheris", "mutate"], default="auto")
    p.add_argument("--targets", default="", help="comma-separated names (default: all)")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--max-seconds", type=int, default=1500, help="per target, a safety cap")
    p.add_argument("--max-rss-mib", type=float, default=256.0)
    p.add_argument("--worker", default="", help=argparse.SUPPRESS)
    p.add_argument("--runs", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--stats", default="", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _engine(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "mutate"
    return "atheris"


# --- worker -------------------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> int:
    tgt = TARGETS[args.worker]
    stats_path = Path(args.stats)
    if _engine(args.engine) == "mutate":
        stats = mutation_loop(tgt, args.runs, args.seed)
        stats.dump(stats_path)
        return 0
    return _atheris_worker(tgt, args, stats_path)


def _atheris_worker(tgt: Target, args: argparse.Namespace, stats_path: Path) -> int:
    import atheris

    stats = Stats(tgt.name, engine="atheris")
    # Coverage of our parsers only: instrumenting the libraries underneath (pyasn1,
    # cryptography's Python layer) costs a factor of 5-10 in speed for little guidance.
    with atheris.instrument_imports(include=["package_format", "user_runtime.vsock"]):
        warm_up(tgt)  # the targets import their parsers lazily: here, instrumented
    stats.baseline_rss_mib = peak_rss_mib()
    start = time.perf_counter()

    def one_input(data: bytes) -> None:
        execute(tgt, data, stats)
        if stats.inputs % 2000 == 0 or stats.inputs >= args.runs:
            stats.seconds = time.perf_counter() - start
            stats.dump(stats_path)

    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{tgt.name}-"))
    for i, seed in enumerate(tgt.seeds()):
        (corpus / f"seed{i}").write_bytes(seed[: tgt.max_len])
    flags = [
        f"-runs={args.runs}",
        f"-max_len={tgt.max_len}",
        f"-seed={args.seed}",
        f"-max_total_time={args.max_seconds}",
        "-timeout=10",  # libFuzzer's own guard; inputs over 1 s are counted as hangs anyway
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        "-reduce_inputs=0",
    ]
    atheris.Setup([sys.argv[0], *flags, str(corpus)], one_input)
    atheris.Fuzz()
    return 0


# --- parent -------------------------------------------------------------------------------


def _split(total: int, names: list[str]) -> dict[str, int]:
    """Inputs per target by weight, rounded up to thousands: the sum is at least `total`."""
    weights = sum(TARGETS[n].weight for n in names)
    return {n: math.ceil(total * TARGETS[n].weight / weights / 1000) * 1000 for n in names}


def _run_all(args: argparse.Namespace, names: list[str], out: Path) -> dict[str, Stats]:
    runs = _split(args.total, names)
    pending = sorted(names, key=lambda n: TARGETS[n].weight)  # the costliest start first
    active: dict[str, subprocess.Popen[bytes]] = {}
    while pending or active:
        while pending and len(active) < args.jobs:
            name = pending.pop(0)
            cmd = [
                sys.executable, __file__, "--worker", name, "--runs", str(runs[name]),
                "--stats", str(out / f"{name}.json"), "--engine", args.engine,
                "--seed", str(args.seed), "--max-seconds", str(args.max_seconds),
            ]  # fmt: skip
            log = (out / f"{name}.log").open("wb")
            active[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(0.5)
        for name, proc in list(active.items()):
            if proc.poll() is not None:
                del active[name]
                print(f"  done {name} (exit {proc.returncode})", flush=True)
    return {n: _collect(n, out) for n in names}


def _collect(name: str, out: Path) -> Stats:
    path = out / f"{name}.json"
    stats = Stats(name) if not path.exists() else Stats(**json.loads(path.read_text()))
    log = (out / f"{name}.log").read_text(errors="replace")
    found = _COV.findall(log)
    if found:
        cov, ft = found[-1]
        stats.coverage = f"{cov} cov / {ft} ft"
    stats.findings += log.count("==ERROR: libFuzzer") + log.count("Uncaught Python exception")
    return stats


def _table(results: dict[str, Stats]) -> None:
    head = (
        f"{'target':20} {'inputs':>9} {'accepted':>8} {'typed':>8} {'untyped':>7} {'>1s':>4} "
        f"{'slowest cpu ms':>14} {'(bytes)':>8} {'wall ms':>8} {'peak MiB':>8} {'exec/s':>7}"
        "  coverage"
    )
    print(head)
    print("-" * len(head))
    for s in results.values():
        rate = s.inputs / s.seconds if s.seconds else 0.0
        print(
            f"{s.target:20} {s.inputs:9d} {s.accepted:8d} {s.typed:8d} {s.findings:7d} "
            f"{s.hangs:4d} {s.slowest_s * 1000:14.1f} {s.slowest_len:8d} "
            f"{s.slowest_wall_s * 1000:8.1f} "
            f"{s.peak_rss_mib:8.1f} {rate:7.0f}  {s.coverage}"
        )


def _parent(args: argparse.Namespace) -> int:
    names = [n for n in args.targets.split(",") if n] or list(TARGETS)
    engine = _engine(args.engine)
    args.engine = engine
    print(f"fuzz: {len(names)} targets, {args.total:,} inputs, engine {engine}, jobs {args.jobs}")
    for name, why in SKIPPED.items():
        print(f"  skipped {name}: {why}")
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-run-") as tmp:
        results = _run_all(args, names, Path(tmp))
    wall = time.monotonic() - start
    _table(results)
    total = sum(s.inputs for s in results.values())
    untyped = sum(s.findings for s in results.values())
    hangs = sum(s.hangs for s in results.values())
    slowest = max(results.values(), key=lambda s: s.slowest_s)
    peak = max(results.values(), key=lambda s: s.peak_rss_mib)
    print(
        f"total {total:,} inputs in {wall:.0f} s wall; untyped exceptions {untyped}; "
        f"inputs over 1 s (cpu) {hangs}; slowest {slowest.slowest_s * 1000:.1f} ms cpu "
        f"({slowest.target}, {slowest.slowest_len} bytes, sha1 {slowest.slowest_sha1}); "
        f"peak RSS {peak.peak_rss_mib:.1f} MiB ({peak.target})"
    )
    print(f"  load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for s in results.values():
        for f in s.finding_files:
            print(f"  finding saved: tests/fuzz/crashes/{f}")
    bad = untyped or hangs or peak.peak_rss_mib > args.max_rss_mib or total < args.total
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: the parent, or one worker when `--worker` is given."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    return _worker(args) if args.worker else _parent(args)


if __name__ == "__main__":
    sys.exit(main())
