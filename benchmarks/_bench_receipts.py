# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What receipts cost on the first run of a big bundle with big inputs (issue 18).

Used by bench_run.py (`--receipt-pairs`). Each measurement starts a fresh local enclave, with
receipts (the default) or without (`NB_RECEIPTS=0`: no running hashes, no record, no NSM
call), then times what a user's first run costs end to end: the bundle and the inputs
uploaded into the session (where the running SHA-256 of every byte is kept, receipts.md §4.1)
and `user-runtime run` (decrypt, export of the inputs, the run, and with receipts the record,
the NSM document and `output/receipt.cbor`). The two modes alternate, pair after pair, so the
shared machine's load falls on both alike; the figure is the median of the pairs' ratios
with its range (the ratio of the two medians is reported too).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

from _run_world import start_enclave, stop_enclave, upload_session


def one_first_run(  # noqa: PLR0917 - one measurement's parts
    env: dict[str, str],
    user: list[str],
    eif: Path,
    memory: str,
    bundle: Path,
    inputs: Path,
    *,
    receipts: bool,
) -> dict[str, float]:
    """Fresh enclave; upload bundle and inputs, then `run`; return the phases in seconds."""
    stop_enclave(env)
    address = start_enclave(env, eif, memory, receipts=receipts)
    try:
        start = time.perf_counter()
        upload_session(address, {"encrypted/big.nb": bundle, "dataset/inputs.bin": inputs})
        uploaded = time.perf_counter()
        proc = subprocess.run(
            [*user, "run", "-f", "big.nb", "-s", "main.py"],
            env=env,
            capture_output=True,
            check=False,
        )
        ran = time.perf_counter()
        if proc.returncode != 0:
            raise SystemExit(f"run failed: {proc.stderr.decode()[-500:]}")
        has_receipt = b"user-runtime: receipt: output/receipt.cbor" in proc.stderr
        if has_receipt != receipts:
            raise SystemExit(f"receipts={receipts} but the run said: {proc.stderr.decode()[-300:]}")
    finally:
        stop_enclave(env)
    return {"upload": uploaded - start, "run": ran - uploaded, "total": ran - start}


def receipt_pairs(  # noqa: PLR0917 - the measurement's inputs
    env: dict[str, str],
    user: list[str],
    eif: Path,
    bundle: Path,
    size: int,
    pairs: int,
    work: Path,
) -> dict[str, object]:
    """Alternate with/without receipts `pairs` times; return figures and the < 5% target."""
    inputs = work / "inputs.bin"
    with inputs.open("wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    memory = str(4 * (size >> 20) + 1536)
    on: list[dict[str, float]] = []
    off: list[dict[str, float]] = []
    for index in range(pairs):
        # Alternate which mode goes first, so neither always follows the other.
        order = (True, False) if index % 2 == 0 else (False, True)
        for receipts in order:
            phases = one_first_run(env, user, eif, memory, bundle, inputs, receipts=receipts)
            (on if receipts else off).append(phases)
    inputs.unlink()

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    # The guide's figure: the median of the pairs' ratios, with its range (each pair ran
    # back to back, so a slow spell of the shared machine falls on both of its runs).
    ratios = sorted(a["total"] / b["total"] for a, b in zip(on, off, strict=True))
    overhead = statistics.median(ratios) - 1
    print(
        f"first run of {size >> 20} MiB bundle + {size >> 20} MiB inputs, {pairs} pairs: "
        f"with receipts {med(on, 'total'):.2f} s (upload {med(on, 'upload'):.2f}, run "
        f"{med(on, 'run'):.2f}), without {med(off, 'total'):.2f} s (upload "
        f"{med(off, 'upload'):.2f}, run {med(off, 'run'):.2f}): receipts add {overhead:+.1%} "
        f"(median of the pairs' ratios; range {ratios[0] - 1:+.1%} to {ratios[-1] - 1:+.1%}); "
        "totals with: " + ", ".join(f"{r['total']:.2f}" for r in on)
        + "; without: " + ", ".join(f"{r['total']:.2f}" for r in off)
        + f"; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )  # fmt: skip
    return {
        "receipts_size": size,
        "receipts_pairs": pairs,
        "receipts_on_total_s": round(med(on, "total"), 3),
        "receipts_off_total_s": round(med(off, "total"), 3),
        "receipts_on_upload_s": round(med(on, "upload"), 3),
        "receipts_off_upload_s": round(med(off, "upload"), 3),
        "receipts_on_run_s": round(med(on, "run"), 3),
        "receipts_off_run_s": round(med(off, "run"), 3),
        "receipts_overhead": round(overhead, 4),
        "receipts_overhead_range": [round(ratios[0] - 1, 4), round(ratios[-1] - 1, 4)],
        "receipts_overhead_of_medians": round(med(on, "total") / med(off, "total") - 1, 4),
        "receipts_on_totals_s": [round(r["total"], 3) for r in on],
        "receipts_off_totals_s": [round(r["total"], 3) for r in off],
        "receipts_loadavg": [round(x, 2) for x in os.getloadavg()],
        "target": {
            "name": "receipts add to the first run (bundle + inputs of --size each; median of "
            "the pairs' ratios)",
            "value": round(overhead, 4),
            "goal": "< 0.05",
            "met": overhead < 0.05,
        },
    }
