# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""bench_run's world: the local stack, keys, image and bundles, and how commands are timed."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "examples" / "ml_app"
DATASET = REPO / "examples" / "user" / "dataset" / "patients.csv"
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"
ML_ARGS = ["-m", "model.h5", "-d", "/dataset/", "-o", "/output/"]
#: The names `setup` makes a KMS key for (one per bundle bench_run packs).
KEY_NAMES = ("breast-cancer-scorer", "trivial", "big")

World = dict[str, Any]


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    suffix = text[-1].upper()
    return int(text[:-1]) * units[suffix] if suffix in units else int(text)


def timed(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed: {proc.stderr.decode()[-500:]}")
    return elapsed


def median_of(n: int, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    timed(argv, env, cwd)  # warm-up
    return statistics.median(timed(argv, env, cwd) for _ in range(n))


def paired_medians(
    n: int,
    first: tuple[list[str], Path | None],
    second: tuple[list[str], Path | None],
    env: dict[str, str],
) -> tuple[float, float]:
    """Medians of two commands measured alternately (the machine's load hits both alike)."""
    timed(first[0], env, first[1])
    timed(second[0], env, second[1])
    a, b = [], []
    for _ in range(n):
        a.append(timed(first[0], env, first[1]))
        b.append(timed(second[0], env, second[1]))
    return statistics.median(a), statistics.median(b)


def owner(*args: str) -> None:
    from owner_tools._cli import main

    rc = main(list(args))
    if rc != 0:
        raise SystemExit(f"owner-tools {args[0]} failed ({rc})")


def setup(work: Path, blobs: Path = BLOBS, run_owner: Callable[..., None] = owner) -> World:
    """Local stack up, owner key, image, and one PCR0-bound KMS key per bundle name."""
    import boto3

    from local_stack import stack
    from local_stack.processes import LOCAL_CREDENTIALS

    state = work / "state"
    info, _ = stack.up(state)
    os.environ.update(LOCAL_CREDENTIALS)
    run_owner("keygen", "-o", str(work / "owner"))
    eif = work / "app.eif"
    owner_key = str(work / "owner.pub")
    run_owner("build-eif", "-o", str(eif), "--blobs", str(blobs), "--owner-key", owner_key)
    kms = boto3.session.Session().client("kms", region_name=info.region, endpoint_url=info.kms.url)
    keys = {}
    for name in KEY_NAMES:
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        policy = work / f"{name}.policy.json"
        run_owner(
            *("policy", "--eif", str(eif), "--bundle-name", name),
            *("--account", stack.LOCAL_ACCOUNT, "--enclave-principal", stack.ENCLAVE_PRINCIPAL),
            *("--admin-principal", stack.OWNER_PRINCIPAL, "--owner-principal"),
            *(stack.OWNER_PRINCIPAL, "-o", str(policy)),
        )
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy.read_text())
        keys[name] = key_id
    return {"state": state, "eif": eif, "info": info, "keys": keys, "stack": stack}


def pack(work: Path, app: Path, name: str, world: World) -> Path:
    info = world["info"]
    out = work / f"{name}.nb"
    owner(
        *("pack", str(app), "-o", str(out), "--key-id", world["keys"][name]),
        *("--signing-key", str(work / "owner.key"), "--kms-endpoint", info.kms.url),
        *("--region", info.region, "--force"),
    )
    return out


def app_dir(work: Path, name: str, files: dict[str, bytes], entry: str) -> Path:
    app = work / name
    app.mkdir()
    for rel, data in files.items():
        (app / rel).write_bytes(data)
    (app / "bundle.toml").write_text(
        f'name = "{name}"\nversion = "1.0.0"\n\n[[entrypoints]]\npath = "{entry}"\n\n'
        "[output]\nstdout = true\nstderr = true\nfiles = true\n"
    )
    return app


def ml_app(work: Path) -> Path:
    app = work / "ml_app"
    shutil.copytree(APP, app)
    toml = app / "bundle.toml"
    lines = toml.read_text().splitlines(keepends=True)
    toml.write_text("".join(x for x in lines if not x.startswith("description")))
    return app


def pack_big(work: Path, size: int, world: World) -> Path:
    """A bundle of `size` random bytes of weights and a `main.py` that does nothing."""
    print(f"packing a {size >> 20} MiB bundle ...", flush=True)
    big_app = app_dir(work, "big", {"main.py": b"pass\n"}, "main.py")
    with (big_app / "weights.bin").open("wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    big = pack(work, big_app, "big", world)
    shutil.rmtree(big_app)
    return big


def enclave_state(state_dir: Path) -> dict[str, Any]:
    return dict(json.loads((state_dir / "enclave" / "state.json").read_text()))


def start_enclave(env: dict[str, str], eif: Path, memory: str, *, receipts: bool = True) -> str:
    """`user-runtime enclave start` in `env`'s NB_STATE_DIR; returns its address."""
    started = subprocess.run(
        [*user_cli(), "enclave", "start", "--eif", str(eif), "--memory", memory],
        env={**env, "NB_RECEIPTS": "1" if receipts else "0"},
        capture_output=True,
        check=False,
    )
    if started.returncode != 0:
        raise SystemExit(f"enclave start failed: {started.stderr.decode()[-500:]}")
    return str(json.loads(started.stdout)["address"])


def stop_enclave(env: dict[str, str]) -> None:
    subprocess.run([*user_cli(), "enclave", "stop"], env=env, capture_output=True, check=False)


def user_cli() -> list[str]:
    """The real `user-runtime` console script of this interpreter's environment."""
    return [str(Path(sys.executable).parent / "user-runtime")]


def second_state_dir(state: Path, name: str) -> Path:
    """A state dir beside `state` sharing its local stack, for a second enclave at once."""
    other = state.parent / name
    other.mkdir(exist_ok=True)
    for item in ("stack.json", "kms-front.json", "nsm-pki"):
        link = other / item
        if not link.exists():
            link.symlink_to(state / item)
    return other


def upload_session(address: str, files: dict[str, Path]) -> None:
    """Put local files into an enclave's session (session path -> local file)."""
    from user_runtime.rpc.client import EnclaveClient
    from user_runtime.run_upload import upload

    with EnclaveClient.connect(address) as client:
        for session_path, local in files.items():
            upload(client, local, session_path)
