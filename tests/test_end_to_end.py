# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 5 item 1, end to end on one machine, through the real CLIs and processes.

Local stack (moto + KMS front) -> owner keygen, build-eif (dev blobs), key policy bound to the
image's PCR0, pack the sample ML app -> user: enclave start (the server read out of the EIF, in
its own network namespace when allowed), upload the plaintext data set, `run` the entrypoint
with /dataset/ and /output/ -> result file read back; afterwards no byte string of the
bundle's plaintext is left anywhere in the enclave's directories; a debug-mode enclave of the
same image gets no key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack import stack
from local_stack.processes import LOCAL_CREDENTIALS
from owner_tools._cli import main as owner_main
from user_runtime._cli import main as user_main
from user_runtime.rpc.client import EnclaveClient

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "examples" / "ml_app"
DATASET = REPO / "examples" / "user" / "dataset" / "patients.csv"
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"
BUNDLE_NAME = "breast-cancer-scorer"
ARGS = "-m model.h5 -d /dataset/ -o /output/"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The local stack, an image, a PCR0-bound key and the packed sample app."""
    work = tmp_path_factory.mktemp("e2e")
    state = work / "state"
    info, _ = stack.up(state)
    saved = dict(os.environ)
    try:
        os.environ.update(LOCAL_CREDENTIALS)
        os.environ["AWS_CONFIG_FILE"] = str(work / "no-config")
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(work / "no-credentials")
        assert owner_main(["keygen", "-o", str(work / "owner")]) == 0
        eif = work / "app.eif"
        build = ["build-eif", "-o", str(eif), "--blobs", str(BLOBS)]
        assert owner_main([*build, "--owner-key", str(work / "owner.pub")]) == 0
        key_id = _bound_key(info, eif, work / "policy.json")
        app = _app_copy(work / "ml_app")
        bundle = work / "app.nb"
        pack = ["pack", str(app), "-o", str(bundle), "--key-id", key_id]
        pack += ["--signing-key", str(work / "owner.key"), "--kms-endpoint", info.kms.url]
        assert owner_main([*pack, "--region", info.region]) == 0
        yield {"state": state, "eif": eif, "bundle": bundle, "info": info}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        user_main(["enclave", "stop", "--state-dir", str(state)])
        stack.down(state)


def _bound_key(info, eif: Path, policy_path: Path) -> str:
    import boto3

    kms = boto3.session.Session().client("kms", region_name=info.region, endpoint_url=info.kms.url)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    args = ["policy", "--eif", str(eif), "--bundle-name", BUNDLE_NAME]
    args += ["--account", stack.LOCAL_ACCOUNT, "--enclave-principal", stack.ENCLAVE_PRINCIPAL]
    args += ["--admin-principal", stack.OWNER_PRINCIPAL, "--owner-principal"]
    assert owner_main([*args, stack.OWNER_PRINCIPAL, "-o", str(policy_path)]) == 0
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy_path.read_text())
    return key_id


def _app_copy(dest: Path) -> Path:
    """The sample app; `description` keys are dropped if this bundle.toml schema lacks them."""
    shutil.copytree(APP, dest)
    from package_format.bundle import parse_bundle_toml
    from package_format.errors import PackageFormatError

    toml = dest / "bundle.toml"
    try:
        parse_bundle_toml(toml.read_text())
    except PackageFormatError:
        lines = toml.read_text().splitlines(keepends=True)
        toml.write_text("".join(x for x in lines if not x.startswith("description")))
    return dest


def _start(world, monkeypatch, capsys, *extra: str) -> dict:
    monkeypatch.setenv("NB_STATE_DIR", str(world["state"]))
    for name, value in stack.ENCLAVE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    rc = user_main(["enclave", "start", "--eif", str(world["eif"]), *extra])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def _run_cli(world) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "user_runtime", "run", "-f", str(world["bundle"])]
    return subprocess.run(
        [*argv, "-s", "ml_algorithm.py", "-a", ARGS],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "NB_STATE_DIR": str(world["state"])},
    )


def _plaintext_needles() -> list[bytes]:
    needles = []
    for path in (APP / "model.h5", APP / "ml_algorithm.py"):
        data = path.read_bytes()
        middle = len(data) // 2
        needles.append(data[middle : middle + 64])
    return needles


def _scan(root: Path, needles: list[bytes]) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in needles):
                hits.append(path)
    return hits


def test_sample_ml_app_end_to_end(world, monkeypatch, capsys) -> None:
    status = _start(world, monkeypatch, capsys)
    assert status["running"]
    with EnclaveClient.connect(status["address"]) as client:
        client.create("dataset/patients.csv")
        client.write("dataset/patients.csv", 0, DATASET.read_bytes())

    proc = _run_cli(world)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("[ml_algorithm] loaded model")
    assert any("scored 169 rows of patients.csv" in line for line in lines)
    assert any("accuracy 0.95" in line for line in lines)

    with EnclaveClient.connect(status["address"]) as client:
        predictions = client.read("output/predictions.csv", 0, 1 << 20).decode()
        metrics = json.loads(client.read("output/metrics.json", 0, 1 << 16))
    assert predictions.splitlines()[0] == "file,row,p_benign,prediction"
    assert len(predictions.splitlines()) == 170
    assert metrics["rows"] == 169
    assert metrics["accuracy"] >= 0.9

    # No byte string of the bundle's plaintext is left in the enclave's directories, as the
    # enclave process sees them (through /proc/PID/root: its work dir is a tmpfs in its own
    # mount namespace when root, invisible from here otherwise).
    recorded = json.loads((world["state"] / "enclave" / "state.json").read_text())
    ram = Path(recorded["ram_dir"])
    inside = Path(f"/proc/{status['pid']}/root{ram}")
    needles = _plaintext_needles()
    assert (inside / "code" / "enclave").is_dir()  # the scan does see the enclave's tree
    assert _scan(inside, needles) == []
    assert _scan(ram, needles) == []
    assert _scan(world["state"], needles) == []
    assert list((inside / "work").iterdir()) == []
    if recorded["private_mount"]:
        work_mounts = [
            line
            for line in Path(f"/proc/{status['pid']}/mountinfo").read_text().splitlines()
            if line.split()[4] == f"{ram}/work"
        ]
        assert len(work_mounts) == 1
        assert " - tmpfs " in work_mounts[0]

    # A second (warm) run works the same and leaves nothing either.
    again = _run_cli(world)
    assert again.returncode == 0, again.stderr
    assert _scan(inside, needles) == []

    # `enclave logs` shows the server's log, and no byte string of the plaintext is in it.
    logs = subprocess.run(
        [sys.executable, "-m", "user_runtime", "enclave", "logs"],
        capture_output=True,
        check=False,
        env={**os.environ, "NB_STATE_DIR": str(world["state"])},
    )
    assert logs.returncode == 0, logs.stderr
    assert b"enclave-server: listening on unix:" in logs.stdout
    assert not any(needle in logs.stdout for needle in needles)

    assert user_main(["enclave", "stop"]) == 0
    assert not ram.exists()
    assert not inside.exists()  # the enclave's namespace, and its tmpfs, went with it


def test_debug_mode_enclave_gets_no_key(world, monkeypatch, capsys) -> None:
    status = _start(world, monkeypatch, capsys, "--debug-mode")
    assert status["pcrs"]["PCR0"] == "00" * 48
    proc = _run_cli(world)
    assert proc.returncode == 1
    assert "KEY_RELEASE_FAILED" in proc.stderr
    assert "[ml_algorithm]" not in proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1
    assert user_main(["enclave", "stop"]) == 0
