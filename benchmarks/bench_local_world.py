# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The local backend in the image's own rootfs against the host's Python (issue 21).

One image built from the toolchain's rootfs. First, unpacking its customer ramdisk into the
cache (user_runtime.enclave.rootfs): cold (a fresh cache, --cold times) and cached (the entry
already there). Then the local backend in each world (`NB_LOCAL_WORLD=image`, then `host`),
alternated A B A B over --pairs pairs, each pair starting the enclave afresh: `enclave start`
(tree cached), the first run of a --size bundle and of the sample ML bundle (key release and
decryption included), and the ML bundle's warm run (median of --warm) against a direct
`python3` of the same script. Medians and ranges per world, and image/host ratios of the
medians. `--rootfs DIR` builds the image on another rootfs tree than the toolchain's (to
compare two, run it once per tree, alternating). Ends with one JSON line; no target is set,
so `targets` is empty.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_qemu as bq
import bench_run as br

WORLDS = ("image", "host")


def unpack_times(eif: Path, cold: int, cached: int) -> dict[str, list[float]]:
    """Seconds to unpack the image's tree into a fresh cache, and to find it cached."""
    from user_runtime.enclave.files import read_image
    from user_runtime.enclave.rootfs import cache_dir, image_root

    image = read_image(eif)
    colds: list[float] = []
    hits: list[float] = []
    base = cache_dir(os.environ)  # the real cache's file system, not /tmp's
    base.mkdir(parents=True, exist_ok=True)
    for _ in range(cold):
        cache = Path(tempfile.mkdtemp(prefix="bench-unpack-", dir=base))
        try:
            colds.append(image_root(eif, image, cache).seconds)
            hits.extend(image_root(eif, image, cache).seconds for _ in range(cached))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return {"cold_s": colds, "cached_s": hits}


def one_pass(
    world_name: str, world: dict[str, object], bundles: dict[str, Path], warm: int
) -> dict[str, float]:
    """Start the local enclave in `world_name`, time its first and warm runs, stop it."""
    state = world["state"]
    env = {**os.environ, "NB_STATE_DIR": str(state), "NB_LOCAL_WORLD": world_name}
    enclave_env = {**env, **world["stack"].ENCLAVE_CREDENTIALS}  # type: ignore[attr-defined]
    user = [str(Path(sys.executable).parent / "user-runtime")]
    start = [*user, "enclave", "start", "--eif", str(world["eif"]), "--backend", "local"]
    started = br.timed([*start, "--memory", "3072"], enclave_env)
    from user_runtime.rpc.client import EnclaveClient
    from user_runtime.run_upload import upload

    status = json.loads((state / "enclave" / "state.json").read_text())  # type: ignore[operator]
    if status["world"] != world_name:
        raise SystemExit(f"asked for the {world_name} world, got {status['world']}")
    try:
        with EnclaveClient.connect(status["address"]) as client:
            client.create("dataset/patients.csv")
            client.write("dataset/patients.csv", 0, br.DATASET.read_bytes())
            for name, path in bundles.items():
                upload(client, path, f"encrypted/{name}.nb")
        first_big = br.timed([*user, "run", "-f", "big.nb", "-s", "main.py"], env)
        run_ml = [*user, "run", "-f", "ml.nb", "-s", "ml_algorithm.py", "-a", " ".join(br.ML_ARGS)]
        first_ml = br.timed(run_ml, env)
        warm_ml = statistics.median(br.timed(run_ml, env) for _ in range(warm))
    finally:
        subprocess.run([*user, "enclave", "stop"], env=env, capture_output=True, check=False)
    return {
        "start_s": started,
        "first_big_s": first_big,
        "first_ml_s": first_ml,
        "warm_ml_s": warm_ml,
    }


def summary(samples: list[dict[str, float]], direct: list[float]) -> dict[str, object]:
    """Median and range of each figure, and the warm run against direct python3."""
    out: dict[str, object] = {key: _spread([s[key] for s in samples]) for key in samples[0]}
    ratios = [s["warm_ml_s"] / d for s, d in zip(samples, direct, strict=True)]
    out["warm_vs_direct"] = _spread(ratios)
    return out


def _spread(values: list[float], digits: int = 3) -> dict[str, object]:
    """Median and range, rounded."""
    return {
        "median": round(statistics.median(values), digits),
        "range": [round(min(values), digits), round(max(values), digits)],
    }


def _bundles(work: Path, world: dict[str, object], size: int) -> dict[str, Path]:
    """A --size bundle (one file of weights) and the sample ML bundle, packed for `world`."""
    big_app = br.app_dir(work, "big", {"main.py": b"pass\n"}, "main.py")
    with (big_app / "weights.bin").open("wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(max(1, size >> 20)):
            f.write(block)
    return {
        "big": br.pack(work, big_app, "big", world),
        "ml": br.pack(work, br.ml_app(work), "breast-cancer-scorer", world),
    }


def _direct_run(work: Path) -> tuple[list[str], Path]:
    """The sample ML script as a direct python3 run: its argv and its folder."""
    direct_dir = work / "direct"
    shutil.copytree(br.APP, direct_dir)
    (direct_dir / "dataset").mkdir()
    shutil.copy(br.DATASET, direct_dir / "dataset")
    argv = [sys.executable, "ml_algorithm.py", "-m", "model.h5", "-d", "dataset/", "-o", "out/"]
    return argv, direct_dir


def _pairs(
    work: Path, world: dict[str, object], bundles: dict[str, Path], opts: argparse.Namespace
) -> tuple[dict[str, list[dict[str, float]]], dict[str, list[float]]]:
    """Each world's passes and direct runs, alternated A B over --pairs pairs."""
    direct_argv, direct_dir = _direct_run(work)
    env = dict(os.environ)
    samples: dict[str, list[dict[str, float]]] = {w: [] for w in WORLDS}
    direct: dict[str, list[float]] = {w: [] for w in WORLDS}
    for pair in range(opts.pairs):
        for name in WORLDS:
            samples[name].append(one_pass(name, world, bundles, opts.warm))
            direct[name].append(
                statistics.median(br.timed(direct_argv, env, direct_dir) for _ in range(opts.warm))
            )
            print(f"pair {pair + 1} {name}: {samples[name][-1]}", flush=True)
    return samples, direct


def _figures(
    rootfs: str,
    unpacked: dict[str, list[float]],
    samples: dict[str, list[dict[str, float]]],
    direct: dict[str, list[float]],
) -> dict[str, object]:
    figures: dict[str, object] = {
        "rootfs": rootfs,
        "unpack_cold_s": _spread(unpacked["cold_s"]),
        "unpack_cached_s": _spread(unpacked["cached_s"], 5),
    }
    for name in WORLDS:
        figures[name] = summary(samples[name], direct[name])
    figures["image_over_host"] = {
        key: round(
            statistics.median(s[key] for s in samples["image"])
            / statistics.median(s[key] for s in samples["host"]),
            3,
        )
        for key in samples["image"][0]
    }
    figures["load_avg"] = os.getloadavg()[0]
    figures["targets"] = []
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64M", help="first-run bundle size (default 64M)")
    parser.add_argument("--pairs", type=int, default=5, help="A B pairs (default 5)")
    parser.add_argument("--warm", type=int, default=3, help="warm runs per pass (median kept)")
    parser.add_argument("--cold", type=int, default=3, help="cold unpacks of the tree")
    parser.add_argument(
        "--rootfs", help="the image's rootfs tree (default: the toolchain's), to compare two"
    )
    opts = parser.parse_args()
    size = br.parse_size(opts.size)
    tools = bq.toolchain()
    if opts.rootfs:
        tools["rootfs"] = {"dir": str(Path(opts.rootfs).resolve())}
    work = Path(tempfile.mkdtemp(prefix="bench-world-"))
    saved = dict(os.environ)
    world: dict[str, object] = {}
    try:
        world = bq.build_world(work, tools)
        unpacked = unpack_times(Path(str(world["eif"])), opts.cold, 5)
        print(f"unpack: {unpacked}", flush=True)
        samples, direct = _pairs(work, world, _bundles(work, world, size), opts)
        figures = {"size": size, **_figures(tools["rootfs"]["dir"], unpacked, samples, direct)}
        print(json.dumps(figures))
    finally:
        if world:
            world["stack"].down(world["state"])  # type: ignore[attr-defined]
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
