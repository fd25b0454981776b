# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""bench_run parts 1 and 2: warm runs against running the same script directly.

1. A warm run of the sample ML entrypoint through the real console script, on an enclave
   with receipts and on a second one without (`NB_RECEIPTS=0`, same local stack, both up at
   once), against `python3 ml_algorithm.py ...` on the same files: the three alternate, order
   rotating, for --repeat rounds (target: with receipts <= 1.3x direct).
2. A trivial entrypoint through `run`, beside `python3 -c pass`: the added latency in ms.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _run_world import (
    APP,
    DATASET,
    ML_ARGS,
    World,
    median_of,
    paired_medians,
    second_state_dir,
    start_enclave,
    stop_enclave,
    timed,
    upload_session,
    user_cli,
)

WARM_KINDS = ("receipts", "no_receipts", "direct")


def _direct_dir(work: Path) -> Path:
    direct_dir = work / "direct"
    if not direct_dir.exists():
        shutil.copytree(APP, direct_dir)
        (direct_dir / "dataset").mkdir()
        shutil.copy(DATASET, direct_dir / "dataset")
    return direct_dir


def _check_receipt(kind: str, argv: list[str], env: dict[str, str]) -> None:
    """The two enclaves do what their names say (one run each, untimed)."""
    proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    said = b"user-runtime: receipt: output/receipt.cbor" in proc.stderr
    if proc.returncode != 0 or said != (kind == "receipts"):
        raise SystemExit(f"{kind}: unexpected run: {proc.stderr.decode()[-300:]}")


def warm_rounds(
    commands: dict[str, tuple[list[str], dict[str, str], Path | None]], rounds: int
) -> dict[str, list[float]]:
    """Time each command once per round, rotating which goes first; one warm-up each."""
    for argv, env, cwd in commands.values():
        timed(argv, env, cwd)
    kinds = list(commands)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for index in range(rounds):
        shift = index % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            argv, env, cwd = commands[kind]
            times[kind].append(timed(argv, env, cwd))
    return times


def warm_ml(
    world: World, work: Path, ml_bundle: Path, env: dict[str, str], rounds: int
) -> dict[str, Any]:
    """1. warm ML runs with and without receipts against direct python3 (see the docstring)."""
    off_env = {**env, "NB_STATE_DIR": str(second_state_dir(world["state"], "state-off"))}
    enclave_env = {**off_env, **world["stack"].ENCLAVE_CREDENTIALS}
    address = start_enclave(enclave_env, world["eif"], "2048", receipts=False)
    try:
        upload_session(address, {"dataset/patients.csv": DATASET, "encrypted/ml.nb": ml_bundle})
        run_ml = [*user_cli(), "run", "-f", "ml.nb", "-s", "ml_algorithm.py"]
        run_ml += ["-a", " ".join(ML_ARGS)]
        direct = [sys.executable, "ml_algorithm.py", "-m", "model.h5", "-d", "dataset/"]
        commands = {
            "receipts": (run_ml, env, None),
            "no_receipts": (run_ml, off_env, None),
            "direct": ([*direct, "-o", "out/"], env, _direct_dir(work)),
        }
        _check_receipt("receipts", run_ml, env)
        _check_receipt("no_receipts", run_ml, off_env)
        times = warm_rounds(commands, rounds)
    finally:
        stop_enclave(off_env)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["receipts"] / med["direct"]
    ratio_off = med["no_receipts"] / med["direct"]
    print(
        f"warm ml entrypoint, {rounds} rounds: run with receipts {med['receipts'] * 1e3:.0f} ms, "
        f"without {med['no_receipts'] * 1e3:.0f} ms, direct {med['direct'] * 1e3:.0f} ms: "
        f"ratio {ratio:.2f}x with receipts, {ratio_off:.2f}x without; "
        + "; ".join(
            f"{k} {min(v) * 1e3:.0f}-{max(v) * 1e3:.0f} ms" for k, v in times.items()
        )
    )  # fmt: skip
    return {
        "ml_run_s": round(med["receipts"], 4),
        "ml_run_no_receipts_s": round(med["no_receipts"], 4),
        "ml_direct_s": round(med["direct"], 4),
        "ml_ratio": round(ratio, 3),
        "ml_ratio_no_receipts": round(ratio_off, 3),
        "ml_rounds": rounds,
        "ml_ranges_s": {k: [round(min(v), 4), round(max(v), 4)] for k, v in times.items()},
        "target": {
            "name": "warm ml run / direct python3 (receipts on)",
            "value": round(ratio, 3),
            "goal": "<= 1.3",
            "met": ratio <= 1.3,
        },
    }


def trivial_run(env: dict[str, str], repeat: int) -> dict[str, Any]:
    """2. a trivial entrypoint through `run` beside `python -c pass`."""
    trivial_s, python_pass = paired_medians(
        repeat,
        ([*user_cli(), "run", "-f", "trivial.nb", "-s", "main.py"], None),
        ([sys.executable, "-c", "pass"], None),
        env,
    )
    lean = (
        "import user_runtime._entry, user_runtime._cli_common, user_runtime.run, "
        "user_runtime.rpc.client"
    )
    import_cli = median_of(repeat, [sys.executable, "-c", lean], env)
    print(
        f"trivial entrypoint: run {trivial_s * 1e3:.0f} ms, python -c pass "
        f"{python_pass * 1e3:.0f} ms, added {(trivial_s - python_pass) * 1e3:.0f} ms "
        f"(python + the run path's imports {import_cli * 1e3:.0f} ms)"
    )
    return {
        "trivial_run_ms": round(trivial_s * 1e3, 1),
        "python_pass_ms": round(python_pass * 1e3, 1),
        "trivial_added_ms": round((trivial_s - python_pass) * 1e3, 1),
        "python_and_run_imports_ms": round(import_cli * 1e3, 1),
        "target": {
            "name": "trivial run (s, reference 0.38)",
            "value": round(trivial_s, 3),
            "goal": "< 0.38",
            "met": trivial_s < 0.38,
        },
    }
