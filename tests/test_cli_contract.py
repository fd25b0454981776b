# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The exit-code contract every CLI shares (specs/cli.md): 0 ok, 1 failure, 2 usage."""

from __future__ import annotations

import subprocess
import sys

import pytest

from enclave._cli import main as enclave_main
from local_stack._cli import main as stack_main
from owner_tools._cli import main as owner_main
from user_runtime._cli import main as user_main

MAINS = {
    "owner-tools": owner_main,
    "user-runtime": user_main,
    "enclave-server": enclave_main,
    "local-stack": stack_main,
}


@pytest.mark.parametrize("prog", sorted(MAINS))
def test_unknown_command_is_usage_error(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert MAINS[prog](["no-such-command"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{prog}: usage: No such command 'no-such-command'."]


@pytest.mark.parametrize("prog", sorted(MAINS))
def test_help_exits_zero(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert MAINS[prog](["--help"]) == 0
    assert "Usage" in capsys.readouterr().out


@pytest.mark.parametrize("module", ["owner_tools", "user_runtime", "enclave", "local_stack"])
def test_console_entry_exits_with_usage_code(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", module, "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
