# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The qemu backend next to the local one: boot-to-ready, first run, warm run (issue 14).

One image (the toolchain's kernel, init and rootfs: what Nitro would boot) runs on both
backends in the same run. Per backend: the time from `enclave start` to a server that
answers; the first run of a bundle of --size bytes (key release through the KMS front and
decryption) against raw AES-256-GCM over the same number of bytes on the host; the sample ML
entrypoint's warm run against a direct `python3` of the same script, alternated A B A B over
--repeat pairs (median and range). Boots and first runs are one sample per backend (a boot
under TCG takes about a minute); say so when quoting them. Ends with one JSON line; issue 14
sets no target for these figures, so `targets` is empty.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_run as br

REPO = Path(__file__).resolve().parent.parent


def toolchain() -> dict[str, dict[str, str]]:
    out = subprocess.run(
        [sys.executable, str(REPO / "toolchain" / "build.py"), "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def build_world(work: Path, tools: dict[str, dict[str, str]]) -> dict[str, object]:
    """bench_run's set-up, with the image built from the toolchain's blobs and rootfs."""
    br.BLOBS = Path(tools["blobs"]["dir"])
    real_owner = br.owner

    def owner_with_rootfs(*args: str) -> None:
        if args and args[0] == "build-eif":
            args = (*args, "--rootfs", tools["rootfs"]["dir"])
        real_owner(*args)

    br.owner = owner_with_rootfs
    try:
        return br.setup(work)
    finally:
        br.owner = real_owner


def measure(
    backend: str, world: dict[str, object], bundles: dict[str, Path], opts: argparse.Namespace
) -> dict[str, object]:
    state = world["state"]
    env = {**os.environ, "NB_STATE_DIR": str(state)}
    enclave_env = {**env, **world["stack"].ENCLAVE_CREDENTIALS}  # type: ignore[attr-defined]
    user = [str(Path(sys.executable).parent / "user-runtime")]
    start = [*user, "enclave", "start", "--eif", str(world["eif"]), "--backend", backend]
    boot = br.timed([*start, "--memory", "3072"], enclave_env)
    from user_runtime.rpc.client import EnclaveClient
    from user_runtime.run_upload import upload

    address = json.loads((state / "enclave" / "state.json").read_text())["address"]  # type: ignore[operator]
    try:
        with EnclaveClient.connect(address) as client:
            client.create("dataset/patients.csv")
            client.write("dataset/patients.csv", 0, br.DATASET.read_bytes())
            for name, path in bundles.items():
                upload(client, path, f"encrypted/{name}.nb")
        first = br.timed([*user, "run", "-f", "big.nb", "-s", "main.py"], env)
        aes = br.raw_aes_gcm(opts.size)
        run_ml = [*user, "run", "-f", "ml.nb", "-s", "ml_algorithm.py", "-a", " ".join(br.ML_ARGS)]
        direct_dir = Path(str(world["work"])) / f"direct-{backend}"
        shutil.copytree(br.APP, direct_dir)
        (direct_dir / "dataset").mkdir()
        shutil.copy(br.DATASET, direct_dir / "dataset")
        direct = [sys.executable, "ml_algorithm.py", "-m", "model.h5", "-d", "dataset/"]
        direct += ["-o", "out/"]
        br.timed(run_ml, env)
        ratios = []
        for _ in range(opts.repeat):
            a = br.timed(direct, env, direct_dir)
            b = br.timed(run_ml, env)
            ratios.append(b / a)
    finally:
        subprocess.run([*user, "enclave", "stop"], env=env, capture_output=True, check=False)
    return {
        "boot_to_ready_s": round(boot, 2),
        "first_run_s": round(first, 3),
        "first_run_vs_raw_aes_gcm": round(aes / first, 4),
        "warm_run_vs_direct_median": round(statistics.median(ratios), 2),
        "warm_run_vs_direct_range": [round(min(ratios), 2), round(max(ratios), 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64M", help="first-run bundle size (default 64M)")
    parser.add_argument("--repeat", type=int, default=5, help="warm-run pairs (default 5)")
    parser.add_argument("--backends", default="local,qemu", help="comma-separated backends")
    opts = parser.parse_args()
    opts.size = br.parse_size(opts.size)
    tools = toolchain()
    work = Path(tempfile.mkdtemp(prefix="bench-qemu-"))
    saved = dict(os.environ)
    world: dict[str, object] = {}
    try:
        os.environ.setdefault("NB_QEMU", tools["qemu"]["bin"])
        world = build_world(work, tools)
        world["work"] = work
        big_app = br.app_dir(work, "big", {"main.py": b"pass\n"}, "main.py")
        with (big_app / "weights.bin").open("wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(max(1, opts.size >> 20)):
                f.write(block)
        bundles = {
            "big": br.pack(work, big_app, "big", world),
            "ml": br.pack(work, br.ml_app(work), "breast-cancer-scorer", world),
        }
        figures: dict[str, object] = {"size": opts.size}
        for backend in opts.backends.split(","):
            started = time.monotonic()
            figures[backend] = measure(backend, world, bundles, opts)
            print(f"{backend}: {figures[backend]} ({time.monotonic() - started:.0f} s)", flush=True)
        figures["load_avg"] = os.getloadavg()[0]
        figures["targets"] = []
        print(json.dumps(figures))
    finally:
        if world:
            world["stack"].down(world["state"])  # type: ignore[attr-defined]
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
