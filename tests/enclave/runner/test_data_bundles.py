# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Data bundles in the runner (specs/threat-model.md §5.7): one test per rule and attack.

Real bundles, a KMS fake that binds each wrapped key to its key id and encryption context
(`data_kit.ContextKms`); every refusal must come before any KMS call and leave no plaintext.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from data_kit import (
    APP_SEED,
    DATA_SEED,
    ROGUE_SEED,
    ContextKms,
    app_manifest,
    data_manifest,
    data_rule,
    seal,
)
from test_runner_kit import DirSession, RecordingSink, scan_for

from enclave.runner.api import OutputTerms, RunRequest
from enclave.runner.bundle import open_bundle
from enclave.runner.errors import (
    BundleExpiredRunError,
    BundleRollbackError,
    DataAppNotListedError,
    DataDuplicateError,
    DataMissingError,
    DataNotAllowedError,
    DataSignerNotListedError,
    DataVersionOutOfRangeError,
    KeyReleaseError,
    OutputTermsExceededError,
    WrongBundleKindError,
)
from enclave.runner.runner import Runner, RunnerConfig
from package_format.bundle import public_key_of
from package_format.bundle.access import AppGrant, DataTerms, VersionRange
from package_format.rpc.codes import ErrorCode

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = b"HOSPITAL-RECORD-5c1d"
ROWS = b"id,score\n1,0.9\n# " + SECRET + b"\n"
READ = b"""import sys
print(open('/data/records/rows.csv').read().splitlines()[1])
try:
    open('/data/records/x', 'w')
except OSError as exc:
    print('read-only', exc.errno)
"""


@pytest.fixture
def env(tmp_path: Path):
    ram = tmp_path / "ram"
    ram.mkdir()
    session = DirSession(tmp_path / "session")
    return ram, session, ContextKms()


def _runner(ram: Path, kms: ContextKms, min_versions=None) -> Runner:
    config = RunnerConfig(
        trusted_keys=(public_key_of(APP_SEED),), work_base=ram, min_versions=min_versions or {}
    )
    return Runner(config, open_bundle, kms, clock=lambda: NOW)


def _put(session: DirSession, data: bytes, name: str) -> str:
    (session.root / "encrypted" / name).write_bytes(data)
    return f"encrypted/{name}"


def _app(session, kms, main=READ, rules=None, **kw) -> str:
    manifest, files = app_manifest(main, (data_rule(),) if rules is None else rules, **kw)
    return _put(session, seal(manifest, files, kms, APP_SEED), "app.nb")


def _data(session, kms, *, file="records.nb", seed=DATA_SEED, **kw) -> str:
    files = {"rows.csv": ROWS}
    return _put(session, seal(data_manifest(files, **kw), files, kms, seed), file)


def _refused(env, error, app: str, data: tuple[str, ...], min_versions=None):
    ram, session, kms = env
    with pytest.raises(error) as info:
        _runner(ram, kms, min_versions).run(
            RunRequest(app, "main.py", data=data), session, RecordingSink()
        )
    assert kms.calls == []  # before any KMS call, the app's included
    assert list(ram.iterdir()) == []
    assert scan_for(session.root / "output", [SECRET]) == []
    return info.value


def test_run_reads_data_read_only_at_its_mount(env) -> None:
    ram, session, kms = env
    app, data = _app(session, kms), _data(session, kms)
    sink = RecordingSink()
    result = _runner(ram, kms).run(RunRequest(app, "main.py", data=(data,)), session, sink)
    assert result.exit_status == 0
    assert sink.out.decode().splitlines() == ["1,0.9", "read-only 30"]  # EROFS
    assert kms.calls == ["scorer", "records"]
    assert [(b.role, b.name, b.version, b.mount) for b in result.bundles] == [
        ("app", "scorer", "1.2.0", ""),
        ("data", "records", "1.0.0", "/data/records"),
    ]
    assert result.bundles[1].signer == public_key_of(DATA_SEED)
    assert len(result.bundles[1].manifest_digest) == 32
    assert result.terms == OutputTerms(None, stdout=True, stderr=True, output_paths=None)
    assert list(ram.iterdir()) == []  # wiped after the run


def test_data_signer_the_app_does_not_list_is_refused(env) -> None:
    _, session, kms = env
    error = _refused(env, DataSignerNotListedError, _app(session, kms),
                     (_data(session, kms, seed=ROGUE_SEED),))  # fmt: skip
    assert error.rpc_code is ErrorCode.DATA_NOT_ALLOWED
    assert "encrypted/records.nb" in str(error)


def test_swapped_data_bundle_with_same_name_is_refused(env) -> None:
    # The app trusts ROGUE's key for `weights` only; ROGUE signs its own `records`.
    _, session, kms = env
    rules = (data_rule(), data_rule("weights", signers=(public_key_of(ROGUE_SEED),)))
    swapped = _data(session, kms, seed=ROGUE_SEED)
    _refused(env, DataSignerNotListedError, _app(session, kms, rules=rules), (swapped,))


def test_app_the_data_bundle_does_not_list_is_refused(env) -> None:
    _, session, kms = env
    grants = (AppGrant("other-app", (public_key_of(APP_SEED),), VersionRange("*")),)
    data = _data(session, kms, apps=grants)
    _refused(env, DataAppNotListedError, _app(session, kms), (data,))


def test_app_signed_by_a_key_the_data_does_not_list_is_refused(env) -> None:
    _, session, kms = env
    grants = (AppGrant("scorer", (public_key_of(ROGUE_SEED),), VersionRange("*")),)
    _refused(env, DataAppNotListedError, _app(session, kms), (_data(session, kms, apps=grants),))


def test_data_version_outside_the_apps_range_is_refused(env) -> None:
    _, session, kms = env
    data = _data(session, kms, version="2.0.0")
    _refused(env, DataVersionOutOfRangeError, _app(session, kms), (data,))


def test_app_downgraded_below_the_datas_range_is_refused(env) -> None:
    _, session, kms = env
    grants = (AppGrant("scorer", (public_key_of(APP_SEED),), VersionRange(">=1.3.0")),)
    _refused(env, DataAppNotListedError, _app(session, kms), (_data(session, kms, apps=grants),))


def test_expired_data_bundle_is_refused(env) -> None:
    _, session, kms = env
    data = _data(session, kms, expires=int(NOW.timestamp()))
    _refused(env, BundleExpiredRunError, _app(session, kms), (data,))


def test_data_older_than_the_superseding_version_is_refused(env) -> None:
    # Revoked or superseded versions: the image pins the minimum per name, as for apps.
    _, session, kms = env
    _refused(env, BundleRollbackError, _app(session, kms), (_data(session, kms),),
             min_versions={"records": "1.0.1"})  # fmt: skip


def test_app_given_as_data_is_refused(env) -> None:
    _, session, kms = env
    app = _app(session, kms)
    manifest, files = app_manifest(READ, (), name="records", version="1.0.0")
    as_data = _put(session, seal(manifest, files, kms, DATA_SEED), "records.nb")
    _refused(env, WrongBundleKindError, app, (as_data,))


def test_data_given_as_app_is_refused(env) -> None:
    _, session, kms = env
    error = _refused(env, WrongBundleKindError, _data(session, kms, seed=APP_SEED), ())
    assert "not an app" in str(error)


def test_duplicate_data_bundle_is_refused(env) -> None:
    _, session, kms = env
    app, data = _app(session, kms), _data(session, kms)
    _refused(env, DataDuplicateError, app, (data, data))
    copy = _put(session, (session.root / data).read_bytes(), "copy.nb")
    _refused(env, DataDuplicateError, app, (data, copy))


def test_missing_required_data_is_refused(env) -> None:
    _, session, kms = env
    _refused(env, DataMissingError, _app(session, kms), ())


def test_data_for_an_app_that_accepts_none_is_refused(env) -> None:
    _, session, kms = env
    _refused(env, DataNotAllowedError, _app(session, kms, rules=()), (_data(session, kms),))


def test_optional_data_may_be_absent(env) -> None:
    ram, session, kms = env
    app = _app(session, kms, main=b"print('ok')", rules=(data_rule(required=False),))
    result = _runner(ram, kms).run(RunRequest(app, "main.py"), session, RecordingSink())
    assert result.exit_status == 0
    assert result.terms is None


def test_wrapped_key_moved_into_another_bundle_fails(env) -> None:
    # Whoever holds a listed signing key re-seals records 1.0.0's wrapped key as 1.0.1:
    # KMS binds the key to name, version and kind, so it is refused, and nothing decrypts.
    ram, session, kms = env
    app = _app(session, kms)
    original = _data(session, kms)
    blob = next(b for b, (_, _, ctx) in kms.keys.items() if ctx["bundle"] == "records")
    key = kms.keys[blob][0]
    files = {"rows.csv": ROWS}
    moved = seal(data_manifest(files, version="1.0.1"), files, kms, DATA_SEED,
                 wrapped=blob, data_key=key)  # fmt: skip
    path = _put(session, moved, "moved.nb")
    with pytest.raises(KeyReleaseError):
        _runner(ram, kms).run(RunRequest(app, "main.py", data=(path,)), session, RecordingSink())
    assert kms.calls == ["scorer", "records"]
    assert list(ram.iterdir()) == []
    assert original != moved


def test_data_key_moved_into_an_app_bundle_fails(env) -> None:
    ram, session, kms = env
    _data(session, kms)
    blob = next(iter(kms.keys))
    manifest, files = app_manifest(b"print(1)", ())
    path = _put(session, seal(manifest, files, kms, APP_SEED, wrapped=blob,
                              data_key=kms.keys[blob][0]), "app.nb")  # fmt: skip
    with pytest.raises(KeyReleaseError):
        _runner(ram, kms).run(RunRequest(path, "main.py"), session, RecordingSink())
    assert list(ram.iterdir()) == []


LOUD = b"""import sys, time
for _ in range(50):
    sys.stdout.write('x' * 99 + '\\n'); sys.stdout.flush()
time.sleep(30)
"""


def test_output_over_the_datas_terms_is_stopped(env) -> None:
    ram, session, kms = env
    app = _app(session, kms, main=LOUD)
    data = _data(session, kms, terms=DataTerms(max_output_bytes=250))
    sink = RecordingSink()
    with pytest.raises(OutputTermsExceededError) as info:
        _runner(ram, kms).run(RunRequest(app, "main.py", data=(data,)), session, sink)
    assert info.value.rpc_code is ErrorCode.OUTPUT_TERMS_EXCEEDED
    assert len(sink.out) == 250  # released up to the limit, nothing past it
    assert list(ram.iterdir()) == []


WRITE = b"""import sys
open('/output/' + sys.argv[1], 'wb').write(b'y' * int(sys.argv[2]))
"""


def test_output_files_over_the_datas_terms_release_nothing(env) -> None:
    ram, session, kms = env
    app = _app(session, kms, main=WRITE)
    data = _data(session, kms, terms=DataTerms(max_output_bytes=100))
    with pytest.raises(OutputTermsExceededError):
        _runner(ram, kms).run(
            RunRequest(app, "main.py", ("big.bin", "101"), data=(data,)), session, RecordingSink()
        )
    assert list((session.root / "output").iterdir()) == []


def test_output_path_outside_the_datas_terms_releases_nothing(env) -> None:
    ram, session, kms = env
    app = _app(session, kms, main=WRITE)
    data = _data(session, kms, terms=DataTerms(output_paths=("scores-*.csv",)))
    runner = _runner(ram, kms)
    ok = runner.run(
        RunRequest(app, "main.py", ("scores-1.csv", "3"), data=(data,)), session, RecordingSink()
    )
    assert ok.outputs == ("output/scores-1.csv",)
    assert ok.terms == OutputTerms(None, True, True, ("scores-*.csv",))
    with pytest.raises(OutputTermsExceededError):
        runner.run(
            RunRequest(app, "main.py", ("rows.csv", "3"), data=(data,)), session, RecordingSink()
        )
    assert list((session.root / "output").iterdir()) == []


def test_stderr_the_datas_terms_withhold_does_not_pass(env) -> None:
    ram, session, kms = env
    app = _app(session, kms, main=b"import sys; sys.stderr.write('row 1 is ' + 'secret')")
    data = _data(session, kms, terms=DataTerms(stderr=False))
    sink = RecordingSink()
    result = _runner(ram, kms).run(RunRequest(app, "main.py", data=(data,)), session, sink)
    assert result.exit_status == 0
    assert b"secret" not in sink.err
    assert result.terms is not None
    assert result.terms.stderr is False


def test_data_larger_than_the_enclave_can_hold_is_refused(env, monkeypatch) -> None:
    import os
    from types import SimpleNamespace

    from enclave.runner import data_checks
    from enclave.runner.errors import DataTooLargeError

    _, session, kms = env
    app, data = _app(session, kms), _data(session, kms)
    real = os.statvfs
    monkeypatch.setattr(
        data_checks.os,
        "statvfs",
        lambda p: SimpleNamespace(f_bavail=1, f_frsize=16) if str(p).endswith("ram") else real(p),
    )
    error = _refused(env, DataTooLargeError, app, (data,))
    assert "encrypted/records.nb" in str(error)
    assert "larger than the enclave can hold" in str(error)
