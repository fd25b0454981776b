# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""App environments in the runner (bundle-format.md §5.8, enclave-image.md §5.5, issue 21).

A bundle whose signed manifest names an environment runs with that environment's
interpreter, first on its PATH as `python` and `python3`; one naming an environment the
image lacks is refused with ENVIRONMENT_MISSING before any key release.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_runner_kit import DirSession, FakeKeyRelease, RecordingSink, make_bundle, owner_key

from enclave.app import _default_python, load_image_config
from enclave.runner.api import RunRequest
from enclave.runner.bundle import open_bundle
from enclave.runner.errors import EnvironmentMissingError
from enclave.runner.runner import Runner, RunnerConfig
from package_format.rpc.codes import ErrorCode

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ENV_A = hashlib.sha256(b"urllib3==1.26.20 --hash=sha256:00\n").hexdigest()
ENV_B = hashlib.sha256(b"numpy==2.4.6 --hash=sha256:00\n").hexdigest()
WHICH = b"""
import os, shutil, subprocess, sys
print("exe", sys.executable)
print("path-python", shutil.which("python"))
print("path-python3", shutil.which("python3"))
print("runs", subprocess.run(["python", "-c", "import sys; print(sys.executable)"],
      capture_output=True, text=True, check=True).stdout.strip())
"""


def _fake_env(root: Path, env_id: str) -> str:
    """An app environment's layout: bin/python3 and bin/python linked to this Python."""
    bindir = root / env_id / "bin"
    bindir.mkdir(parents=True)
    for name in ("python3", "python"):
        (bindir / name).symlink_to(sys.executable)
    return str(bindir / "python3")


def _run(tmp_path: Path, bundle: bytes, environments, prestart: bool = False):
    ram = tmp_path / "ram"
    ram.mkdir()
    session = DirSession(tmp_path / "session")
    (session.root / "encrypted" / "app.nb").write_bytes(bundle)
    config = RunnerConfig(
        trusted_keys=(owner_key(),),
        work_base=ram,
        environments=environments,
        prestart=prestart,
    )
    release = FakeKeyRelease()
    runner = Runner(config, open_bundle, release, clock=lambda: NOW)
    runner.warm()
    runner.settle()
    sink = RecordingSink()
    try:
        result = runner.run(RunRequest("encrypted/app.nb", "main.py", ()), session, sink)
    finally:
        runner.close()
    return result, release, sink


def test_bundle_needing_an_environment_the_image_lacks_is_refused_before_key_release(
    tmp_path,
) -> None:
    bundle = make_bundle({"main.py": b"print('never')\n"}, environment=ENV_A)
    python = _fake_env(tmp_path / "app", ENV_B[:16])
    with pytest.raises(EnvironmentMissingError) as info:
        _run(tmp_path, bundle, {ENV_B: python})
    assert info.value.rpc_code is ErrorCode.ENVIRONMENT_MISSING
    assert ENV_A in str(info.value)
    assert "\n" not in str(info.value)


def test_image_with_no_environment_refuses_a_bundle_naming_one(tmp_path) -> None:
    bundle = make_bundle({"main.py": b"print('never')\n"}, environment=ENV_A)
    with pytest.raises(EnvironmentMissingError):
        _run(tmp_path, bundle, {})


def test_refusal_releases_no_key(tmp_path) -> None:
    bundle = make_bundle({"main.py": b"print('never')\n"}, environment=ENV_A)
    ram = tmp_path / "ram"
    ram.mkdir()
    session = DirSession(tmp_path / "session")
    (session.root / "encrypted" / "app.nb").write_bytes(bundle)
    release = FakeKeyRelease()
    config = RunnerConfig(trusted_keys=(owner_key(),), work_base=ram, environments={})
    runner = Runner(config, open_bundle, release, clock=lambda: NOW)
    with pytest.raises(EnvironmentMissingError):
        runner.run(RunRequest("encrypted/app.nb", "main.py", ()), session, RecordingSink())
    assert release.calls == 0
    assert list(ram.iterdir()) == []


@pytest.mark.parametrize("prestart", [False, True], ids=["spawned", "prestarted"])
def test_named_environment_interpreter_is_python_on_path(tmp_path, prestart) -> None:
    python = _fake_env(tmp_path / "app", ENV_A[:16])
    bundle = make_bundle({"main.py": WHICH}, environment=ENV_A)
    result, release, sink = _run(tmp_path, bundle, {ENV_A: python}, prestart=prestart)
    assert result.exit_status == 0, sink.err
    assert release.calls == 1
    lines = dict(line.split(" ", 1) for line in sink.out.decode().splitlines())
    bindir = Path(python).parent
    assert lines["path-python"] == f"{bindir}/python"
    assert lines["path-python3"] == f"{bindir}/python3"


def test_bundle_naming_no_environment_runs_with_the_default(tmp_path) -> None:
    bundle = make_bundle({"main.py": WHICH})
    result, _, sink = _run(tmp_path, bundle, {ENV_A: "/nonexistent/bin/python3"})
    assert result.exit_status == 0, sink.err
    lines = dict(line.split(" ", 1) for line in sink.out.decode().splitlines())
    assert lines["path-python3"] == f"{Path(sys.executable).parent}/python3"


def test_image_config_environments_and_default(tmp_path) -> None:
    path = tmp_path / "enclave.json"
    one = [{"python": "/opt/nitro-bundles/app/x/bin/python3", "sha256": ENV_A}]
    path.write_text(f'{{"owner_keys": ["{"00" * 32}"], "environments": {_json(one)}}}')
    image = load_image_config(path)
    assert image.environments == {ENV_A: "/opt/nitro-bundles/app/x/bin/python3"}
    assert _default_python(image) == {}  # that interpreter is not on this file system
    path.write_text(
        path.read_text().replace("/opt/nitro-bundles/app/x/bin/python3", sys.executable)
    )
    assert _default_python(load_image_config(path)) == {"python": sys.executable}
    two = [*one, {"python": "/opt/nitro-bundles/app/y/bin/python3", "sha256": ENV_B}]
    path.write_text(f'{{"owner_keys": ["{"00" * 32}"], "environments": {_json(two)}}}')
    assert _default_python(load_image_config(path)) == {}
    path.write_text(f'{{"owner_keys": ["{"00" * 32}"], "environments": null}}')
    assert load_image_config(path).environments is None


def _json(value: object) -> str:
    import json

    return json.dumps(value)
