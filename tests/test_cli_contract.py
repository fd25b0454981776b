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


def _leaf_commands(command, path=()):  # type: ignore[no-untyped-def]
    subs = getattr(command, "commands", None)
    if not subs:
        yield path, command
        return
    for name, sub in subs.items():
        yield from _leaf_commands(sub, (*path, name))


def test_every_command_help_has_an_example() -> None:
    # Issue 17: --help is self-contained: what the command does and an example.
    import typer

    from local_stack._cli import app as stack_app
    from owner_tools._cli import app as owner_app
    from user_runtime._cli import app as user_app

    missing = []
    for prog, app in (
        ("owner-tools", owner_app),
        ("user-runtime", user_app),
        ("local-stack", stack_app),
    ):
        for path, command in _leaf_commands(typer.main.get_command(app)):
            if "Example:" not in (command.help or ""):
                missing.append(" ".join((prog, *path)))
    assert missing == []
