# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime run --nonce` against a real server with a simulated NSM (specs/receipts.md §6.1)."""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "enclave"))
from test_runner_kit import FakeKeyRelease, make_bundle, owner_key

from enclave.nsm.simulator import SimulatedNsm, create_sim_pki, image_pcrs
from enclave.runner.bundle import open_bundle
from enclave.runner.record import RECEIPT_PATH, ReceiptIssuer
from enclave.runner.runner import Runner, RunnerConfig
from enclave.server import EnclaveServer
from enclave.sessionfs import SessionFs
from enclave.transport import SocketServer, listen_unix
from package_format.receipt import verify_receipt
from user_runtime._cli import main

PCR0 = hashlib.sha384(b"image").digest()


@pytest.fixture
def enclave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ram = tmp_path / "ram"
    ram.mkdir()
    fs = SessionFs()
    pki = create_sim_pki(tmp_path / "pki")
    nsm = SimulatedNsm(pki, image_pcrs(PCR0, bytes(48), bytes(48)))
    issuer = ReceiptIssuer(fs, lambda nonce, data: nsm.attestation(user_data=data, nonce=nonce))
    runner = Runner(
        RunnerConfig((owner_key(),), ram), open_bundle, FakeKeyRelease(), receipts=issuer
    )
    sock = tmp_path / "enclave.sock"
    server = SocketServer(EnclaveServer(fs, runner), listen_unix(sock))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NB_ENCLAVE_ADDRESS", f"unix:{sock}")
    monkeypatch.chdir(tmp_path)
    try:
        yield fs, pki
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_run_with_a_nonce_names_its_bound_receipt(enclave, tmp_path, capsys) -> None:
    fs, pki = enclave
    fs.create("encrypted/app.nb", 0o644)
    fs.write("encrypted/app.nb", 0, make_bundle({"main.py": b"print('hi')\n"}))
    nonce = "0f" * 16
    rc = main(["run", "-f", "app.nb", "-s", "main.py", "--nonce", nonce])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out == "hi\n"
    assert "user-runtime: output: output/receipt.cbor" in err
    assert "user-runtime: receipt: output/receipt.cbor (record " in err
    assert err.rstrip().endswith("0 output(s), 0 input(s), nonce bound)")
    receipt = fs.read(RECEIPT_PATH, 0, 1 << 20)
    verified = verify_receipt(
        receipt, root=pki.root_pem, expect_pcrs={0: PCR0}, nonce=bytes.fromhex(nonce)
    )
    assert verified.record.stdout == hashlib.sha256(b"hi\n").digest()


@pytest.mark.parametrize("nonce", ["xyz", "", "00" * 1025], ids=["not-hex", "empty", "too-long"])
def test_bad_nonce_is_a_usage_error(enclave, capsys, nonce) -> None:
    rc = main(["run", "-f", "app.nb", "-s", "main.py", "--nonce", nonce])
    _, err = capsys.readouterr()
    assert rc == 2
    assert "--nonce" in err
    assert len(err.strip().splitlines()) == 1


def test_naming_a_runs_receipt_does_not_load_the_verifier() -> None:
    # `run` prints one line about the receipt after every run; loading X.509 and the
    # attestation checks for it added ~150 ms to each warm run (bench_run's ML ratio).
    import subprocess
    import sys

    code = (
        "import sys, user_runtime.receipt; "
        "print('cryptography.x509' in sys.modules, 'package_format.receipt.verify' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
