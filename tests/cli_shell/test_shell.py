# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""cli_shell: each kind of error becomes one stderr line and its exit code (specs/cli.md)."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
import typer

from cli_shell import CliShell
from cli_shell.shell import reference_dir

PACKAGES = ("package_format", "owner_tools", "user_runtime", "enclave", "local_stack", "cli_shell")


class ToolError(Exception):
    pass


class ToolUsageError(ToolError):
    pass


def _shell(raised: BaseException | None, hints: dict[str, str] | None = None) -> CliShell:
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
    return CliShell("tool", [module], (ToolError,), ToolUsageError, hints=hints)


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


def test_version_prints_program_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _shell(None).main(["--version"]) == 0
    out = capsys.readouterr().out.split()
    assert out[0] == "tool"
    assert out[1][0].isdigit() or out[1] == "unknown"


def test_help_names_a_reference_that_exists(capsys: pytest.CaptureFixture[str]) -> None:
    shell = CliShell("tool", [], (ToolError,), ToolUsageError, summary="Does X.", example="tool x")
    assert shell.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "Does X." in text
    assert "Example: tool x" in text
    specs = reference_dir()
    assert specs is not None
    assert (specs / "cli.md").is_file()


def test_wheel_carries_the_specs_the_help_points_to(tmp_path: Path) -> None:
    # An installed wheel has no source tree: the help's reference must travel inside it.
    root = Path(__file__).resolve().parents[2]
    src = tmp_path / "src"
    src.mkdir()
    keep = ("pyproject.toml", "README.md", "specs", *PACKAGES)
    for name in keep:
        if (root / name).is_dir():
            shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(root / name, src / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    subprocess.run(
        [*pip, "-w", str(tmp_path / "dist"), str(src)],
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    installed = [n for n in names if n.endswith("/data/share/doc/nitro-bundles/specs/cli.md")]
    assert installed, names
    specs = {n.rsplit("/", 1)[1] for n in names if "/share/doc/nitro-bundles/specs/" in n}
    assert specs == {p.name for p in (root / "specs").glob("*.md")}


def _json_shell(raised: BaseException) -> CliShell:
    module = types.ModuleType("commands")

    def register(app: typer.Typer) -> None:
        @app.command()
        def go(
            as_json: bool = typer.Option(False, "--json"), args: str = typer.Option("", "-a")
        ) -> None:
            """Raise what the test asks for."""
            raise raised

        @app.command()
        def other() -> None:
            """A second command."""

    module.register = register  # type: ignore[attr-defined]
    return CliShell("tool", [module], (ToolError,), ToolUsageError)


def test_json_error_is_an_object_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert _json_shell(ToolError("bundle.nb: bad")).main(["go", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "tool: error: bundle.nb: bad\n"
    assert json.loads(captured.out) == {
        "error": {"exit_code": 1, "type": "ToolError", "message": "bundle.nb: bad"}
    }


def test_json_as_an_argument_value_is_not_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert _json_shell(ToolError("bad")).main(["go", "-a", "--json"]) == 1
    assert capsys.readouterr().out == ""


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
    shell = _shell(
        _DetailedToolError("out.nb: already exists", hint),
        {"overwrite": "use --force to replace it"},
    )
    assert shell.main(["go"]) == 1
    assert capsys.readouterr().err == line
