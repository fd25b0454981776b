# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""enclave.runner.record: each run's record and receipt (specs/receipts.md §3-§5), local NSM."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from test_runner_kit import FakeKeyRelease, RecordingSink, make_bundle, owner_key

from enclave.nsm.simulator import SimulatedNsm, create_sim_pki, image_pcrs
from enclave.runner.api import RunRequest, RunResult
from enclave.runner.bundle import open_bundle
from enclave.runner.errors import RunError
from enclave.runner.record import RECEIPT_PATH, ReceiptIssuer
from enclave.runner.runner import Runner, RunnerConfig
from enclave.sessionfs import SessionFs, SessionFsError
from package_format.receipt import (
    InputMismatchError,
    NonceMismatchError,
    OutputMismatchError,
    PcrMismatchError,
    verify_inputs,
    verify_outputs,
    verify_receipt,
)
from package_format.rpc.codes import ErrorCode

PCR0 = hashlib.sha384(b"image").digest()
SCRIPT = (
    b"import sys, pathlib\n"
    b"data = pathlib.Path('/dataset/in.txt').read_text()\n"
    b"pathlib.Path('/output/out.txt').write_text(data.upper())\n"
    b"pathlib.Path('/output/sub').mkdir()\n"
    b"pathlib.Path('/output/sub/n.txt').write_text(str(len(data)))\n"
    b"print('done', sys.argv[1:])\n"
)


class Setup:
    def __init__(self, tmp_path: Path, *, nsm_fails: bool = False) -> None:
        ram = tmp_path / "ram"
        ram.mkdir()
        self.fs = SessionFs()
        self.pki = create_sim_pki(tmp_path / "pki")
        nsm = SimulatedNsm(self.pki, image_pcrs(PCR0, bytes(48), bytes(48)))

        def attest(nonce: bytes | None, user_data: bytes) -> bytes:
            if nsm_fails:
                raise OSError("nsm gone")
            return nsm.attestation(user_data=user_data, nonce=nonce)

        issuer = ReceiptIssuer(self.fs, attest)
        config = RunnerConfig((owner_key(),), ram)
        self.runner = Runner(config, open_bundle, FakeKeyRelease(), receipts=issuer)
        self.stdout: list[bytes] = []

    def put(self, path: str, data: bytes) -> None:
        self.fs.create(path, 0o644)
        self.fs.write(path, 0, data)

    def run(self, script: bytes = SCRIPT, **kwargs: object) -> RunResult:
        self.put("encrypted/app.nb", make_bundle({"main.py": script}))
        request = RunRequest("encrypted/app.nb", "main.py", ("-x", "y z"), **kwargs)
        return self.runner.run(request, self.fs, RecordingSink(on_stdout=self.stdout.append))

    def open_session(self, path: str) -> io.BytesIO | None:
        try:
            size = self.fs.stat(path).size
        except SessionFsError:
            return None
        return io.BytesIO(self.fs.read(path, 0, size))

    def verify(self, receipt: bytes, nonce: bytes | None = None, pcr0: bytes = PCR0):
        return verify_receipt(
            receipt, root=self.pki.root_pem, expect_pcrs={0: pcr0}, nonce=nonce
        ).record


def test_run_writes_a_receipt_that_verifies_against_its_outputs_and_inputs(tmp_path) -> None:
    s = Setup(tmp_path)
    s.put("dataset/in.txt", b"hello")
    s.put("model/w.bin", bytes(300_000))  # a memfd-backed file
    nonce = b"\x42" * 16
    outcome = s.run(nonce=nonce)
    assert outcome.exit_status == 0
    assert outcome.receipt is not None
    assert outcome.outputs == ("output/out.txt", "output/sub/n.txt", RECEIPT_PATH)
    assert s.fs.read(RECEIPT_PATH, 0, 1 << 20) == outcome.receipt
    record = s.verify(outcome.receipt, nonce=nonce)
    assert [f.path for f in record.outputs] == ["output/out.txt", "output/sub/n.txt"]
    assert [f.path for f in record.inputs] == ["dataset/in.txt", "model/w.bin"]
    assert verify_outputs(record, s.open_session) == 2
    assert verify_inputs(record, s.open_session) == 2
    assert record.stdout == hashlib.sha256(b"".join(s.stdout)).digest()
    assert record.stderr == hashlib.sha256(b"").digest()
    assert record.entrypoint == "main.py"
    assert record.args == ("-x", "y z")
    assert record.exit_status == 0
    assert record.started <= record.ended
    (app,) = record.bundles
    bundle = s.fs.read("encrypted/app.nb", 0, 1 << 24)
    assert (app.role, app.digest) == ("app", hashlib.sha256(bundle).digest())
    assert app.signer == owner_key()
    assert app.manifest_digest != bytes(32)


def test_changed_output_fails_verification(tmp_path) -> None:
    s = Setup(tmp_path)
    s.put("dataset/in.txt", b"hello")
    outcome = s.run()
    assert outcome.receipt is not None
    record = s.verify(outcome.receipt)
    s.fs.write("output/out.txt", 0, b"J")
    with pytest.raises(OutputMismatchError):
        verify_outputs(record, s.open_session)


def test_input_written_at_random_offsets_is_digested_from_its_bytes(tmp_path) -> None:
    # specs/receipts.md §4.1: out-of-order writes drop the running hash; the run re-reads.
    s = Setup(tmp_path)
    s.fs.create("dataset/in.txt", 0o644)
    s.fs.write("dataset/in.txt", 3, b"lo")
    s.fs.write("dataset/in.txt", 0, b"hel")
    outcome = s.run()
    assert outcome.receipt is not None
    record = s.verify(outcome.receipt)
    assert record.inputs[0].sha256 == hashlib.sha256(b"hello").digest()
    s.fs.write("dataset/in.txt", 0, b"J")  # the user's copy changed after the run
    with pytest.raises(InputMismatchError):
        verify_inputs(record, s.open_session)


def test_receipt_replayed_for_another_nonce_fails(tmp_path) -> None:
    s = Setup(tmp_path)
    s.put("dataset/in.txt", b"hello")
    outcome = s.run(nonce=b"\x01" * 8)
    assert outcome.receipt is not None
    with pytest.raises(NonceMismatchError):
        s.verify(outcome.receipt, nonce=b"\x02" * 8)


def test_receipt_checked_against_another_image_fails(tmp_path) -> None:
    s = Setup(tmp_path)
    s.put("dataset/in.txt", b"hello")
    outcome = s.run()
    assert outcome.receipt is not None
    with pytest.raises(PcrMismatchError):
        s.verify(outcome.receipt, pcr0=hashlib.sha384(b"other image").digest())


def test_entrypoint_output_named_receipt_is_replaced_and_not_recorded(tmp_path) -> None:
    s = Setup(tmp_path)
    outcome = s.run(b"open('/output/receipt.cbor', 'w').write('forged')\n")
    assert outcome.receipt is not None
    assert s.fs.read(RECEIPT_PATH, 0, 1 << 20) == outcome.receipt
    assert s.verify(outcome.receipt).outputs == ()


def test_failed_nsm_fails_the_run_closed(tmp_path) -> None:
    s = Setup(tmp_path, nsm_fails=True)
    with pytest.raises(RunError) as caught:
        s.run(b"print('x')\n")
    assert caught.value.rpc_code is ErrorCode.RUN_FAILED
    assert "receipt" in str(caught.value)


def test_refused_run_has_no_receipt_and_leaves_no_state(tmp_path) -> None:
    s = Setup(tmp_path)
    s.put("encrypted/app.nb", make_bundle({"main.py": b"print(1)\n"}))
    with pytest.raises(RunError):
        s.runner.run(RunRequest("encrypted/app.nb", "nope.py"), s.fs, RecordingSink())
    with pytest.raises(SessionFsError):
        s.fs.stat(RECEIPT_PATH)
    assert s.run(b"print(2)\n").receipt is not None  # the next run is recorded as usual
