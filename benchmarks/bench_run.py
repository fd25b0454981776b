# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime run` against running the same script directly (issue 5 item 4).

Sets up the whole local chain once (local stack, keygen, build-eif, PCR0-bound key, pack,
enclave start from the image, dataset upload), then measures in the same run:

1. a warm run of the sample ML entrypoint through the real console script, on an enclave
   with receipts and on a second one without, against `python3 ml_algorithm.py ...` on the
   same files, the three alternating (target: with receipts <= 1.3x; benchmarks/_run_warm.py);
2. a trivial entrypoint through `run`, beside `python3 -c pass`: the added latency in ms;
3. the first run of a --size bundle (default 1G): verify + key release (attested, through the
   KMS front; the files are laid out pre-sized meanwhile, as the runner does) + decrypt into
   the enclave's work dir (its private `huge=within_size` tmpfs, reached through /proc/PID/root,
   when the launcher could mount one), against raw AES-256-GCM over the same bytes
   (target >= 0.5x; medians of --big-repeat alternating measurements of each), plus the
   whole `run` wall time of that bundle. The bundle is read as the server reads a large
   session file, through a read-only mapping (enclave.mapped_source); one untimed trial
   runs first (reported), since the VM's first touch of fresh guest memory is slow;
4. the first run of a small app with a --data-size data bundle (default 1G, issue 22;
   `bench_data`): open + both sides' checks + key release + streamed decrypt against raw
   AES-256-GCM over the data bundle's bytes (target >= 0.5x), and the peak memory beyond its
   plaintext (target < 64 MiB); then the whole run through the real runner.
5. receipts (issue 18, benchmarks/_bench_receipts.py): the first run of the --size bundle with
   --size of inputs, uploads included, on fresh enclaves with and without receipts,
   alternating for --receipt-pairs pairs (target: receipts add < 5%). `--receipts-only` runs
   parts 1 and 5 alone.

Parts 3 and 4 are in benchmarks/_run_big.py, the set-up in benchmarks/_run_world.py.

Ends with one JSON line (figures and targets).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import _run_world
import bench_data
from _bench_receipts import receipt_pairs
from _run_big import big_bundle_part, data_bundle_run, raw_aes_gcm
from _run_warm import trivial_run, warm_ml
from _run_world import (
    APP,
    BLOBS,
    DATASET,
    ML_ARGS,
    REPO,
    World,
    app_dir,
    ml_app,
    owner,
    pack,
    pack_big,
    parse_size,
    start_enclave,
    timed,
    upload_session,
    user_cli,
)

# What bench_qemu and bench_local_world reuse of bench_run (its set-up and helpers).
__all__ = [
    "APP",
    "BLOBS",
    "DATASET",
    "ML_ARGS",
    "app_dir",
    "main",
    "ml_app",
    "owner",
    "pack",
    "parse_size",
    "raw_aes_gcm",
    "setup",
    "timed",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", default="1G", help="size of the big bundle (default 1G)")
    parser.add_argument(
        "--repeat", type=int, default=15, help="runs per median (the host is noisy)"
    )
    parser.add_argument(
        "--big-repeat", type=int, default=5, help="first runs of the big bundle (median kept)"
    )
    parser.add_argument("--data-size", default="1G", help="size of the data bundle (default 1G)")
    parser.add_argument(
        "--receipt-pairs", type=int, default=5, help="with/without receipts pairs (0: skip)"
    )
    parser.add_argument("--receipts-only", action="store_true", help="only parts 1 and 5")
    opts = parser.parse_args()
    if opts.repeat < 5 or 0 < opts.receipt_pairs < 5:
        parser.error("--repeat and --receipt-pairs: at least 5 (A B A B ..., median and range)")
    return opts


def setup(work: Path) -> World:
    """The world's set-up with this module's BLOBS and owner (bench_qemu swaps both)."""
    return _run_world.setup(work, blobs=BLOBS, run_owner=owner)


def _envs(world: World) -> tuple[dict[str, str], dict[str, str]]:
    """The user's environment, and the enclave launcher's (with the parent's credentials)."""
    env = {**os.environ, "NB_STATE_DIR": str(world["state"])}
    return env, {**env, **world["stack"].ENCLAVE_CREDENTIALS}


def _first_parts(work: Path, world: World, opts: argparse.Namespace) -> dict[str, Any]:
    """Parts 1 and 2 on a fresh enclave with receipts (and a second without, for part 1)."""
    env, enclave_env = _envs(world)
    ml_bundle = pack(work, ml_app(work), "breast-cancer-scorer", world)
    trivial_app = app_dir(work, "trivial", {"main.py": b"pass\n"}, "main.py")
    trivial = pack(work, trivial_app, "trivial", world)
    memory = str(max(2048, 2 * (parse_size(opts.size) >> 20) + 1024))
    address = start_enclave(enclave_env, world["eif"], memory)
    upload_session(
        address,
        {
            "dataset/patients.csv": DATASET,
            "encrypted/ml.nb": ml_bundle,
            "encrypted/trivial.nb": trivial,
        },
    )
    figures = warm_ml(world, work, ml_bundle, env, opts.repeat)
    targets = [figures.pop("target")]
    if not opts.receipts_only:
        trivial_figures = trivial_run(env, opts.repeat)
        targets.append(trivial_figures.pop("target"))
        figures.update(trivial_figures)
    figures["targets"] = targets
    return figures


def _receipts(work: Path, world: World, big: Path, opts: argparse.Namespace) -> dict[str, Any]:
    """5. (stops the enclave, so after 3. and 4., which use its work dir)."""
    _, enclave_env = _envs(world)
    size = big.stat().st_size
    pairs = opts.receipt_pairs
    return receipt_pairs(enclave_env, user_cli(), Path(world["eif"]), big, size, pairs, work)


def measure(work: Path, world: World, opts: argparse.Namespace) -> dict[str, Any]:
    """Every part asked for; the figures with their targets last."""
    result = _first_parts(work, world, opts)
    targets = result.pop("targets")
    big = pack_big(work, parse_size(opts.size), world)
    if not opts.receipts_only:
        env, _ = _envs(world)
        figures, enclave = big_bundle_part(world, big, env, opts.big_repeat)
        targets.append(figures.pop("target"))
        data = data_bundle_run(work, world, parse_size(opts.data_size), enclave, opts)
        targets.extend(bench_data.targets(data))
        result.update(figures)
        result.update(data)
    if opts.receipt_pairs > 0:
        receipts = _receipts(work, world, big, opts)
        targets.append(receipts.pop("target"))
        result.update(receipts)
    big.unlink()
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = targets
    return result


def main() -> None:
    opts = parse_args()
    # The client's modules byte-compiled, as a regular install has them (an editable install
    # under PYTHONDONTWRITEBYTECODE would recompile them at every `run`).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "package_format", "user_runtime", "cli_shell"],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    saved = dict(os.environ)
    world: World = {}
    try:
        world = setup(work)
        result = measure(work, world, opts)
        print(json.dumps(result))
    finally:
        if world:
            subprocess.run(
                [sys.executable, "-m", "user_runtime", "enclave", "stop"],
                env={**os.environ, "NB_STATE_DIR": str(world["state"])},
                capture_output=True,
                check=False,
            )
            world["stack"].down(world["state"])
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
