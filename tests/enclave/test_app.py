# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""enclave.app wiring: image config, the runner over the session fs, NSM/KMS set-up, the relay."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path

import pytest
from test_runner_kit import FakeKeyRelease, RecordingSink, make_bundle, owner_key

from enclave.app import (
    ImageConfigError,
    load_image_config,
    make_key_release,
    make_nsm,
)
from enclave.credentials import CredentialStore, HostCredentials
from enclave.errors import UsageError
from enclave.forwarder import LoopbackForwarder, parse_target
from enclave.runner.api import RunRequest
from enclave.runner.bundle import open_bundle
from enclave.runner.errors import EntrypointNotDeclaredError, KeyReleaseError, RunError
from enclave.runner.runner import Runner, RunnerConfig
from enclave.sessionfs import SessionFs
from package_format.rpc.codes import ErrorCode


def _config(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "enclave.json"
    path.write_text(json.dumps(doc))
    return path


def test_image_config_as_build_eif_writes_it(tmp_path) -> None:
    key = owner_key()
    doc = {
        "format": 1,
        "kms_region": None,
        "min_bundle_versions": {"demo": "1.2.0"},
        "owner_keys": [key.hex()],
    }
    config = load_image_config(_config(tmp_path, doc))
    assert config.owner_keys == (key,)
    assert config.min_versions == {"demo": "1.2.0"}
    assert config.kms_region is None


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"owner_keys": []},
        {"owner_keys": ["zz"]},
        {"owner_keys": ["00" * 31]},
        {"owner_keys": ["00" * 32], "min_bundle_versions": {"a": 1}},
        {"owner_keys": ["00" * 32], "kms_region": 5},
    ],
    ids=["not-object", "no-keys", "bad-hex", "short-key", "bad-versions", "bad-region"],
)
def test_bad_image_config_rejected(tmp_path, doc) -> None:
    with pytest.raises(ImageConfigError):
        load_image_config(_config(tmp_path, doc))


def _fs_runner(tmp_path: Path) -> tuple[Runner, SessionFs]:
    ram = tmp_path / "ram"
    ram.mkdir()
    runner = Runner(RunnerConfig((owner_key(),), ram), open_bundle, FakeKeyRelease())
    return runner, SessionFs()


def _put(fs: SessionFs, data: bytes) -> None:
    fs.create("encrypted/app.nb", 0o644)
    fs.write("encrypted/app.nb", 0, data)


def test_refusal_over_the_session_fs_carries_its_rpc_code(tmp_path) -> None:
    runner, fs = _fs_runner(tmp_path)
    _put(fs, make_bundle({"main.py": b"print('x')"}))
    with pytest.raises(RunError) as info:
        runner.run(RunRequest("encrypted/app.nb", "other.py"), fs, RecordingSink())
    assert isinstance(info.value, EntrypointNotDeclaredError)
    assert info.value.rpc_code is ErrorCode.ENTRYPOINT_NOT_DECLARED


def test_session_fs_exports_dataset_and_imports_output(tmp_path) -> None:
    runner, fs = _fs_runner(tmp_path)
    fs.create("dataset/in.txt", 0o644)
    fs.write("dataset/in.txt", 0, b"hello")
    script = (
        b"import sys, pathlib\n"
        b"data = pathlib.Path(sys.argv[1], 'in.txt').read_text()\n"
        b"pathlib.Path(sys.argv[2], 'out.txt').write_text(data.upper())\n"
    )
    _put(fs, make_bundle({"main.py": script}))
    request = RunRequest("encrypted/app.nb", "main.py", ("/dataset/", "/output/"))
    result = runner.run(request, fs, RecordingSink(), threading.Event())
    assert (result.exit_status, result.outputs) == (0, ("output/out.txt",))
    assert fs.read("output/out.txt", 0, 100) == b"HELLO"


def test_cancel_event_kills_run_over_the_session_fs(tmp_path) -> None:
    runner, fs = _fs_runner(tmp_path)
    _put(fs, make_bundle({"main.py": b"import time\nprint('go', flush=True)\ntime.sleep(600)\n"}))
    cancel = threading.Event()
    sink = RecordingSink(on_stdout=lambda _b: cancel.set())
    result = runner.run(RunRequest("encrypted/app.nb", "main.py"), fs, sink, cancel)
    assert result.exit_status == 128 + 9
    assert list((tmp_path / "ram").iterdir()) == []


def test_simulated_nsm_needs_pki_and_pcrs() -> None:
    with pytest.raises(UsageError):
        make_nsm({"NB_NSM": "simulated"})
    with pytest.raises(UsageError):
        make_nsm({"NB_NSM": "tpm"})


def test_key_release_without_credentials_fails_typed() -> None:
    release = make_key_release(
        {"AWS_REGION": "us-east-1"}, nsm=None, region=None, store=CredentialStore()
    )
    with pytest.raises(KeyReleaseError, match="no credentials"):
        release("key", b"wrapped", {})


def test_parse_kms_target() -> None:
    assert parse_target("unix:/run/kms.sock") == (socket.AF_UNIX, "/run/kms.sock")
    with pytest.raises(UsageError):
        parse_target("tcp:1.2.3.4:443")


def test_loopback_forwarder_relays_to_unix_socket(tmp_path) -> None:
    path = tmp_path / "up.sock"
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.bind(str(path))
    upstream.listen(1)

    def echo() -> None:
        conn, _ = upstream.accept()
        with conn:
            data = conn.recv(1024)
            conn.sendall(b"echo:" + data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    relay = LoopbackForwarder(f"unix:{path}")
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=30) as client:
            client.sendall(b"ping")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(1024) == b"echo:ping"
    finally:
        relay.close()
        upstream.close()
        thread.join(timeout=30)


def test_runner_decrypts_a_large_bundle_from_sealed_session_memory(tmp_path) -> None:
    # Over 256 KiB the session file is a memfd: the runner maps it sealed and decrypts from
    # it in place; the entrypoint sees exactly the bundle's bytes.
    runner, fs = _fs_runner(tmp_path)
    weights = bytes(range(256)) * 8192  # 2 MiB: two workers, several segments
    script = (
        b"import hashlib, pathlib\n"
        b"own = pathlib.Path(__file__).parent / 'weights.bin'\n"
        b"print(hashlib.sha256(own.read_bytes()).hexdigest())\n"
    )
    _put(fs, make_bundle({"main.py": script, "weights.bin": weights}))
    assert fs.stat("encrypted/app.nb").size > 256 * 1024
    sink = RecordingSink()
    status = runner.run(RunRequest("encrypted/app.nb", "main.py"), fs, sink, threading.Event())
    assert status.exit_status == 0
    assert bytes(sink.out).strip().decode() == hashlib.sha256(weights).hexdigest()
    fs.write("encrypted/app.nb", 0, b"X")  # still writable after the run (a sealed copy)
    assert fs.read("encrypted/app.nb", 0, 1) == b"X"


def test_key_release_reads_the_credentials_the_host_sent_last() -> None:
    store = CredentialStore()
    release = make_key_release({}, nsm=None, region=None, store=store)
    with pytest.raises(KeyReleaseError, match="no credentials"):
        release("key", b"wrapped", {})
    store.set(HostCredentials("AKIDEXAMPLE", "secret"))  # no region anywhere yet
    with pytest.raises(KeyReleaseError, match="no region"):
        release("key", b"wrapped", {})
