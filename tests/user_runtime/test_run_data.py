# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime run --data` against a real enclave server (KMS fake bound to contexts).

Bad input is one line naming the bundle and the rule, exit 1, and nothing left in the session.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "enclave"))

from data_kit import (  # noqa: E402
    APP_SEED,
    DATA_SEED,
    ROGUE_SEED,
    ContextKms,
    app_manifest,
    data_manifest,
    data_rule,
    seal,
)

from enclave.runner.bundle import open_bundle  # noqa: E402
from enclave.runner.runner import Runner, RunnerConfig  # noqa: E402
from enclave.server import EnclaveServer  # noqa: E402
from enclave.sessionfs import SessionFs  # noqa: E402
from enclave.transport import SocketServer, listen_unix  # noqa: E402
from package_format.bundle import public_key_of  # noqa: E402
from package_format.bundle.access import DataTerms  # noqa: E402
from user_runtime._cli import main  # noqa: E402

ROWS = {"rows.csv": b"id,score\n1,0.9\n"}
READ = b"print(open('/data/records/rows.csv').read().splitlines()[1])"
LOUD = b"import sys\nfor _ in range(100): sys.stdout.write('z' * 99 + '\\n')\n"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import threading

    sock, ram = tmp_path / "enclave.sock", tmp_path / "ram"
    ram.mkdir()
    fs, kms = SessionFs(), ContextKms()
    runner = Runner(RunnerConfig((public_key_of(APP_SEED),), ram), open_bundle, kms)
    server = SocketServer(EnclaveServer(fs, runner), listen_unix(sock))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NB_ENCLAVE_ADDRESS", f"unix:{sock}")
    monkeypatch.chdir(tmp_path)
    try:
        yield tmp_path, fs, kms
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _app(world, main_py: bytes = READ) -> str:
    tmp, _, kms = world
    manifest, files = app_manifest(main_py, (data_rule(),))
    path = tmp / "app.nb"
    path.write_bytes(seal(manifest, files, kms, APP_SEED))
    return str(path)


def _data(world, name: str = "records.nb", seed: bytes = DATA_SEED, **kw) -> str:
    tmp, _, kms = world
    path = tmp / name
    path.write_bytes(seal(data_manifest(ROWS, **kw), ROWS, kms, seed))
    return str(path)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("user-runtime: error: ")
    return err[0]


def _session_empty(fs: SessionFs) -> bool:
    try:
        return fs.listdir("encrypted") == []
    except Exception:
        return True


def test_run_with_a_local_data_bundle(world, capsys) -> None:
    _, fs, kms = world
    rc = main(["run", "-f", _app(world), "--data", _data(world), "-s", "main.py"])
    assert rc == 0
    assert capsys.readouterr().out == "1,0.9\n"
    assert kms.calls == ["scorer", "records"]
    assert _session_empty(fs)  # uploaded for the run, removed after it


def test_app_given_as_data_is_one_line_and_nothing_is_sent(world, capsys) -> None:
    _, fs, _ = world
    app = _app(world)
    other = world[0] / "other.nb"
    other.write_bytes(Path(app).read_bytes())
    assert main(["run", "-f", app, "--data", str(other), "-s", "main.py"]) == 1
    line = _one_line(capsys)
    assert "other.nb" in line
    assert "not data" in line
    assert _session_empty(fs)


def test_data_given_as_app_is_one_line(world, capsys) -> None:
    assert main(["run", "-f", _data(world), "-s", "main.py"]) == 1
    assert "not an app" in _one_line(capsys)


def test_duplicate_data_bundle_is_one_line(world, capsys) -> None:
    data = _data(world)
    assert main(["run", "-f", _app(world), "--data", data, "--data", data, "-s", "main.py"]) == 1
    assert "given twice" in _one_line(capsys)


def test_truncated_data_bundle_is_one_line_and_nothing_is_sent(world, capsys) -> None:
    _, fs, _ = world
    data = Path(_data(world))
    data.write_bytes(data.read_bytes()[:-10])
    assert main(["run", "-f", _app(world), "--data", str(data), "-s", "main.py"]) == 1
    assert "records.nb" in _one_line(capsys)
    assert _session_empty(fs)


def test_data_signer_the_app_does_not_list_is_refused_remotely(world, capsys) -> None:
    _, fs, kms = world
    rogue = _data(world, seed=ROGUE_SEED)
    assert main(["run", "-f", _app(world), "--data", rogue, "-s", "main.py"]) == 1
    line = _one_line(capsys)
    assert "encrypted/records.nb" in line
    assert "(DATA_NOT_ALLOWED)" in line
    assert kms.calls == []
    assert _session_empty(fs)


def test_output_over_the_terms_is_stopped_remotely(world, capsys) -> None:
    data = _data(world, terms=DataTerms(max_output_bytes=300))
    assert main(["run", "-f", _app(world, LOUD), "--data", data, "-s", "main.py"]) == 1
    captured = capsys.readouterr()
    assert len(captured.out) == 300
    assert "(OUTPUT_TERMS_EXCEEDED)" in captured.err
