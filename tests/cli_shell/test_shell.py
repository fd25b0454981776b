# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""cli_shell: each kind of error becomes one stderr line and its exit code (specs/cli.md)."""

from __future__ import annotations

import errno
import types

import pytest
import typer

from cli_shell import CliShell


class ToolError(Exception):
    pass


class ToolUsageError(ToolError):
    pass


def _shell(raised: BaseException | None) -> CliShell:
    module = types.ModuleType("commands")

    def register(app: typer.Typer) -> None:
        @app.command()
        def go() -> None:
            """Raise what the test asks for."""
            if raised is not None:
                raise raised

        @app.command()
        def other() -> None:
            """A second command, so `go` is a sub-command."""

    module.register = register  # type: ignore[attr-defined]
    return CliShell("tool", [module], (ToolError,), ToolUsageError)


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (None, 0, ""),
        (ToolError("bundle.nb: segment 3\nfailed   authentication"), 1,
         "tool: error: bundle.nb: segment 3 failed authentication\n"),
        (ToolUsageError("--size must be positive"), 2, "tool: usage: --size must be positive\n"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.toml"), 1,
         "tool: error: x.toml: no such file or directory\n"),
        # Ctrl-C in a command: typer exits 130 quietly, as shells expect.
        (KeyboardInterrupt(), 130, ""),
    ],
)  # fmt: skip
def test_error_becomes_one_line_and_exit_code(
    raised: BaseException | None, code: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _shell(raised).main(["go"]) == code
    captured = capsys.readouterr()
    assert captured.err == line
    assert "Traceback" not in captured.err


def test_unknown_flag_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _shell(None).main(["go", "--nope"]) == 2
    assert capsys.readouterr().err.startswith("tool: usage: ")


def test_verbose_reraises_with_traceback() -> None:
    with pytest.raises(ToolError, match="boom"):
        _shell(ToolError("boom")).main(["--verbose", "go"])


def test_unexpected_exception_is_not_swallowed() -> None:
    # A bug is not an operational failure: it must surface, not print a tidy line.
    with pytest.raises(ZeroDivisionError):
        _shell(ZeroDivisionError("bug")).main(["go"])


class _DetailedToolError(ToolError):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@pytest.mark.parametrize(
    ("hint", "line"),
    [
        ("overwrite", "tool: error: out.nb: already exists (hint: use --force to replace it)\n"),
        ("say what to do", "tool: error: out.nb: already exists (hint: say what to do)\n"),
    ],
)
def test_library_hint_key_becomes_the_clis_words(
    hint: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 19: the library's error names no flag; the CLI's hint table does.
    shell = _shell(_DetailedToolError("out.nb: already exists", hint))
    shell._hints = {"overwrite": "use --force to replace it"}
    assert shell.main(["go"]) == 1
    assert capsys.readouterr().err == line
