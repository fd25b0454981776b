# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 6 item 1: the seed's flow, as written, through a real sync mount and a real local enclave.

`user-runtime sync -d synced_folder`, `cp app_package.encrypted synced_folder/encrypted`,
`cp -r dataset/* synced_folder/dataset/`, `user-runtime run -f app_package.encrypted -s
ml_algorithm.py -a "-m model.h5 -d /dataset/ -o /output/"`: the results appear in
synced_folder/output/. The image, key and bundle come from the owner tools
(tests/test_end_to_end.py builds them the same way).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests"))
from test_end_to_end import DATASET, world  # noqa: E402, F401 - the module-scoped fixture

pytestmark = pytest.mark.fuse


def _sh(*argv: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_seed_flow_through_the_mount(world, tmp_path, fuse_ok):  # noqa: F811
    from local_stack import stack

    user = tmp_path / "user"
    (user / "dataset").mkdir(parents=True)
    (user / "dataset" / DATASET.name).write_bytes(DATASET.read_bytes())
    (user / "app_package.encrypted").write_bytes(world["bundle"].read_bytes())
    env = {**os.environ, "NB_STATE_DIR": str(world["state"]), **stack.ENCLAVE_CREDENTIALS}
    env.pop("NB_ENCLAVE_ADDRESS", None)
    ur = [sys.executable, "-m", "user_runtime"]
    started = _sh(*ur, "enclave", "start", "--eif", str(world["eif"]), env=env, cwd=user)
    assert started.returncode == 0, started.stderr
    synced = user / "synced_folder"
    try:
        step = _sh(*ur, "sync", "-d", "synced_folder", env=env, cwd=user)
        assert step.returncode == 0, step.stderr
        step = _sh("cp", "app_package.encrypted", "synced_folder/encrypted", env=env, cwd=user)
        assert step.returncode == 0, step.stderr
        step = _sh("sh", "-c", "cp -r dataset/* synced_folder/dataset/", env=env, cwd=user)
        assert step.returncode == 0, step.stderr
        run = _sh(
            *ur, "run", "-f", "app_package.encrypted", "-s", "ml_algorithm.py",
            "-a", "-m model.h5 -d /dataset/ -o /output/", env=env, cwd=user,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert any("scored 169 rows of patients.csv" in line for line in run.stdout.splitlines())
        names = sorted(p.name for p in (synced / "output").iterdir())
        assert "metrics.json" in names
        assert "predictions.csv" in names
        metrics = json.loads((synced / "output" / "metrics.json").read_text())
        assert metrics["rows"] == 169
        predictions = (synced / "output" / "predictions.csv").read_text().splitlines()
        assert predictions[0] == "file,row,p_benign,prediction"
        assert len(predictions) == 170
        # the store holds the user's files and the owner's ciphertext, never output or plaintext
        store = user / ".synced_folder.nb-store" / "tree"
        assert (store / "encrypted" / "app_package.encrypted").read_bytes() == world[
            "bundle"
        ].read_bytes()
        assert not (store / "output").exists()
        app_source = (REPO / "examples" / "ml_app" / "ml_algorithm.py").read_bytes()
        for path in store.rglob("*"):
            if path.is_file():
                assert app_source[100:164] not in path.read_bytes(), path
    finally:
        _sh(*ur, "sync", "--stop", "-d", "synced_folder", env=env, cwd=user)
        _sh(*ur, "enclave", "stop", env=env, cwd=user)


def test_entrypoint_run_right_after_cp_sees_all_10000_files(world, tmp_path, fuse_ok):  # noqa: F811
    # Close does not wait for the enclave (specs/sync.md §6.3): `run` must wait for the
    # mount's replay queue before starting (§6.4), or it would miss the last files.
    from local_stack import stack

    user = tmp_path / "user"
    many = user / "many"
    many.mkdir(parents=True)
    header, row = DATASET.read_text().splitlines()[:2]
    for i in range(10_000):
        (many / f"p{i:05d}.csv").write_text(f"{header}\n{row}\n")
    (user / "app_package.encrypted").write_bytes(world["bundle"].read_bytes())
    env = {**os.environ, "NB_STATE_DIR": str(world["state"]), **stack.ENCLAVE_CREDENTIALS}
    env.pop("NB_ENCLAVE_ADDRESS", None)
    ur = [sys.executable, "-m", "user_runtime"]
    started = _sh(*ur, "enclave", "start", "--eif", str(world["eif"]), env=env, cwd=user)
    assert started.returncode == 0, started.stderr
    synced = user / "synced_folder"
    try:
        step = _sh(*ur, "sync", "--json", "-d", "synced_folder", env=env, cwd=user)
        assert step.returncode == 0, step.stderr
        answer = json.loads(step.stdout)  # sync.md §9: one object, the mount ready
        assert (answer["result"], answer["folder"]) == ("synced", str(synced.resolve()))
        assert answer["pid"] > 0
        step = _sh("cp", "app_package.encrypted", "synced_folder/encrypted", env=env, cwd=user)
        assert step.returncode == 0, step.stderr
        step = _sh("cp", "-r", "many/.", "synced_folder/dataset/", env=env, cwd=user)
        assert step.returncode == 0, step.stderr
        run = _sh(
            *ur, "run", "-f", "app_package.encrypted", "-s", "ml_algorithm.py",
            "-a", "-m model.h5 -d /dataset/ -o /output/", env=env, cwd=user,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        metrics = json.loads((synced / "output" / "metrics.json").read_text())
        assert metrics["rows"] == 10_000
        assert "scored 1 rows of p09999.csv" in run.stdout
    finally:
        _sh(*ur, "sync", "--stop", "-d", "synced_folder", env=env, cwd=user)
        _sh(*ur, "enclave", "stop", env=env, cwd=user)
