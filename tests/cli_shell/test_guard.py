# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""cli_shell.guard: the typer-free error map gives the lines and codes CliShell gives."""

from __future__ import annotations

import errno
import io
import subprocess
import sys
import types

import pytest
import typer

from cli_shell import CliShell
from cli_shell.guard import ErrorMap, guard


class ToolError(Exception):
    pass


class ToolUsageError(ToolError):
    pass


class HintedError(ToolError):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


ERRORS = ErrorMap("tool", (ToolError,), ToolUsageError, {"overwrite": "use --force"})


def _raising(exc: BaseException):
    def command() -> int:
        raise exc

    return command


def _typer_shell(exc: BaseException) -> CliShell:
    module = types.ModuleType("commands")

    def register(app: typer.Typer) -> None:
        @app.command()
        def go() -> None:
            """Raise the error under test."""
            raise exc

        @app.command()
        def other() -> None:
            """A second command, so `go` is a sub-command."""

    module.register = register  # type: ignore[attr-defined]
    return CliShell("tool", [module], ERRORS.failures, ERRORS.usage_error, hints=ERRORS.hints)


CASES = [
    (ToolUsageError("-a: bad"), 2, "tool: usage: -a: bad\n"),
    (ToolError("enclave gone"), 1, "tool: error: enclave gone\n"),
    (
        HintedError("out.nb: exists", "overwrite"),
        1,
        "tool: error: out.nb: exists (hint: use --force)\n",
    ),
    (
        FileNotFoundError(errno.ENOENT, "No such file or directory", "x.nb"),
        1,
        "tool: error: x.nb: no such file or directory\n",
    ),
    (KeyboardInterrupt(), 130, "tool: error: interrupted\n"),
]


@pytest.mark.parametrize(("exc", "code", "line"), CASES)
def test_guard_turns_each_error_into_its_line_and_code(exc, code, line) -> None:
    err = io.StringIO()
    assert guard(ERRORS, _raising(exc), err) == code
    assert err.getvalue() == line


# Not Ctrl-C: click answers KeyboardInterrupt inside a command with exit 130 itself.
@pytest.mark.parametrize(("exc", "code", "line"), CASES[:-1])
def test_guard_and_the_typer_shell_print_the_same_line(exc, code, line, capsys) -> None:
    assert _typer_shell(exc).main(["go"]) == code
    assert capsys.readouterr().err == line


def test_guard_returns_the_commands_code_and_prints_nothing() -> None:
    err = io.StringIO()
    assert guard(ERRORS, lambda: 7, err) == 7
    assert err.getvalue() == ""


def test_guard_lets_a_bug_show_its_traceback() -> None:
    with pytest.raises(ZeroDivisionError):
        guard(ERRORS, lambda: 1 // 0, io.StringIO())


def test_guard_imports_no_typer() -> None:
    code = "import sys, cli_shell.guard; print('typer' in sys.modules, 'rich' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "False False"
