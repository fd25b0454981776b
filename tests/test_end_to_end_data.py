# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 22 end to end on the local stack: three parties, through the real CLIs and processes.

The owner packs the sample app with a `[[data]]` entry trusting the provider's key; a third
party (a hospital) packs its patient records as a data bundle under its own KMS key, whose
policy (`owner-tools policy --data`) binds it to the image's PCR0 and to data bundles; the
user runs the app on the records (`run --data`) without ever holding them in plaintext. A
data bundle whose provider's policy names other PCRs gets no key; nothing is left behind.
"""

from __future__ import annotations

import hashlib
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
from package_format.bundle import load_public_key
from user_runtime._cli import main as user_main

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "examples" / "ml_app"
DATASET = REPO / "examples" / "user" / "dataset" / "patients.csv"
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"
ARGS = "-m model.h5 -d /data/patient-records/ -o /output/"


def _policy_key(info, work: Path, name: str, *source: str, data: bool) -> str:
    import boto3

    kms = boto3.session.Session().client("kms", region_name=info.region, endpoint_url=info.kms.url)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    out = work / f"{name}-{key_id[:8]}.policy.json"
    args = ["policy", *source, "--bundle-name", name, "--account", stack.LOCAL_ACCOUNT]
    args += ["--enclave-principal", stack.ENCLAVE_PRINCIPAL, "--admin-principal"]
    args += [stack.OWNER_PRINCIPAL, "--owner-principal", stack.OWNER_PRINCIPAL, "-o", str(out)]
    assert owner_main([*args, *(["--data"] if data else [])]) == 0
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=out.read_text())
    return key_id


def _pack(info, folder: Path, out: Path, key_id: str, signing: Path, *extra: str) -> None:
    args = ["pack", str(folder), "-o", str(out), "--key-id", key_id, "--signing-key", str(signing)]
    args += ["--kms-endpoint", info.kms.url, "--region", info.region, *extra]
    assert owner_main(args) == 0


def _public_hex(path: Path) -> str:
    return load_public_key(path.read_text()).hex()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e-data")
    state = work / "state"
    info, _ = stack.up(state)
    saved = dict(os.environ)
    try:
        os.environ.update(LOCAL_CREDENTIALS)
        os.environ["AWS_CONFIG_FILE"] = str(work / "no-config")
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(work / "no-credentials")
        for who in ("owner", "hospital"):
            assert owner_main(["keygen", "-o", str(work / who)]) == 0
        eif = work / "app.eif"
        build = ["build-eif", "-o", str(eif), "--blobs", str(BLOBS)]
        assert owner_main([*build, "--owner-key", str(work / "owner.pub")]) == 0
        image = ["--eif", str(eif)]
        app_key = _policy_key(info, work, "breast-cancer-scorer", *image, data=False)
        data_key = _policy_key(info, work, "patient-records", *image, data=True)
        other_pcrs = work / "other.pcrs.json"
        other_pcrs.write_text(json.dumps({"PCR0": "ab" * 48}))
        wrong_key = _policy_key(info, work, "patient-records", "--pcrs", str(other_pcrs), data=True)

        app = work / "ml_app"
        shutil.copytree(APP, app)
        toml = app / "bundle.toml"
        lines = [x for x in toml.read_text().splitlines(keepends=True) if "description" not in x]
        toml.write_text(
            "".join(lines) + '\n[[data]]\nname = "patient-records"\n'
            f'signers = ["{_public_hex(work / "hospital.pub")}"]\nversions = ">=1.0.0, <2.0.0"\n'
        )
        _pack(info, app, work / "app.nb", app_key, work / "owner.key")

        records = work / "records"
        records.mkdir()
        shutil.copy(DATASET, records / "patients.csv")
        (records / "bundle.toml").write_text(
            'name = "patient-records"\nversion = "1.0.0"\n[[apps]]\n'
            f'name = "breast-cancer-scorer"\nsigners = ["{_public_hex(work / "owner.pub")}"]\n'
            "[terms]\nstderr = false\nmax_output_bytes = 1048576\n"
            'output_paths = ["predictions.csv", "metrics.json"]\n'
        )
        _pack(info, records, work / "records.nb", data_key, work / "hospital.key", "--data")
        _pack(info, records, work / "wrong.nb", wrong_key, work / "hospital.key", "--data")
        yield {"state": state, "eif": eif, "work": work}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        user_main(["enclave", "stop", "--state-dir", str(state)])
        stack.down(state)


def _run(world, data: str) -> subprocess.CompletedProcess[str]:
    work = world["work"]
    argv = [sys.executable, "-m", "user_runtime", "run", "-f", str(work / "app.nb")]
    argv += ["--data", str(work / data), "-s", "ml_algorithm.py", "-a", ARGS]
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=180,
        env={**os.environ, "NB_STATE_DIR": str(world["state"])},
    )  # fmt: skip


def _receipt_names_both_bundles(world) -> None:
    # The run record (specs/receipts.md §3.2) lists the app and the provider's data bundle,
    # each by its whole file's SHA-256 (what the index lists), the data at its mount.
    from package_format.receipt.receipt import parse_receipt
    from package_format.receipt.record import RunRecord
    from user_runtime.rpc.client import EnclaveClient
    from user_runtime.run import enclave_address

    address = enclave_address(str(world["state"] / "enclave"))
    with EnclaveClient.connect(address) as client:
        size = client.stat("output/receipt.cbor").size
        data = client.read("output/receipt.cbor", 0, size)
    record = RunRecord.decode(parse_receipt(data).record)
    roles = [(b.role, b.name, b.mount) for b in record.bundles]
    assert roles == [
        ("app", "breast-cancer-scorer", ""),
        ("data", "patient-records", "/data/patient-records"),
    ]
    work = world["work"]
    assert record.bundles[0].digest == hashlib.sha256((work / "app.nb").read_bytes()).digest()
    assert record.bundles[1].digest == hashlib.sha256((work / "records.nb").read_bytes()).digest()
    assert record.terms is not None
    assert record.terms.stderr is False


def _scan(root: Path, needle: bytes) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


def test_three_party_run_scores_the_providers_records(world, monkeypatch, capsys) -> None:
    monkeypatch.setenv("NB_STATE_DIR", str(world["state"]))
    for name, value in stack.ENCLAVE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    assert user_main(["enclave", "start", "--eif", str(world["eif"])]) == 0
    status = json.loads(capsys.readouterr().out)

    proc = _run(world, "records.nb")
    assert proc.returncode == 0, proc.stderr
    assert any("scored 169 rows of patients.csv" in line for line in proc.stdout.splitlines())
    assert "output/predictions.csv" in proc.stderr
    _receipt_names_both_bundles(world)

    # The provider's key policy names other PCRs: no key, one line, nothing decrypted.
    denied = _run(world, "wrong.nb")
    assert denied.returncode == 1
    assert "KEY_RELEASE_FAILED" in denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1

    recorded = json.loads((world["state"] / "enclave" / "state.json").read_text())
    inside = Path(f"/proc/{status['pid']}/root{recorded['ram_dir']}")
    rows = DATASET.read_bytes()
    needle = rows[len(rows) // 2 : len(rows) // 2 + 64]
    assert (inside / "code" / "enclave").is_dir()
    assert _scan(inside, needle) == []
    assert list((inside / "work").iterdir()) == []
    assert user_main(["enclave", "stop"]) == 0
