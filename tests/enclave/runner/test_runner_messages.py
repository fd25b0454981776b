# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 15 item 6: a refused bundle is named once, by its session path, in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_runner_kit import (
    OTHER_SEED,
    DirSession,
    FakeKeyRelease,
    RecordingSink,
    make_bundle,
    owner_key,
)

from enclave.runner.api import RunRequest
from enclave.runner.bundle import open_bundle
from enclave.runner.errors import BundleInvalidError, UntrustedBundleSignerError
from enclave.runner.runner import Runner, RunnerConfig


@pytest.fixture
def runner(tmp_path: Path):
    ram = tmp_path / "ram"
    ram.mkdir()
    config = RunnerConfig(trusted_keys=(owner_key(),), work_base=ram)
    return Runner(config, open_bundle, FakeKeyRelease()), DirSession(tmp_path / "session")


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"\0" * 64, BundleInvalidError, "encrypted/app.nb: not a bundle (bad magic)"),
        (
            make_bundle({"main.py": b""}, seed=OTHER_SEED),
            UntrustedBundleSignerError,
            "encrypted/app.nb: ",
        ),
    ],
    ids=["bad-magic", "untrusted-signer"],
)
def test_refused_bundle_message_names_it_once_without_repeated_prefixes(
    runner, data: bytes, error: type, message: str
) -> None:
    run, session = runner
    (session.root / "encrypted" / "app.nb").write_bytes(data)
    with pytest.raises(error) as info:
        run.run(RunRequest("encrypted/app.nb", "main.py"), session, RecordingSink())
    text = str(info.value)
    assert text.startswith(message)
    assert "bundle: " not in text
