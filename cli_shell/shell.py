# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`CliShell`: a typer app whose `main` turns every error into one stderr line and an exit code.

Exit codes (specs/cli.md): 0 success, 1 operational or verification failure, 2 usage
error, 130 interrupted. Every error is one line on stderr, prefixed with the program
name (`guard.ErrorMap`, shared with the typer-free path); `--verbose` re-raises it with its
traceback instead. Only the CLIs print or exit.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from types import ModuleType

import typer

from cli_shell.guard import ErrorMap, one_line

DISTRIBUTION = "nitro-bundles"
INSTALLED_SPECS = Path("share") / "doc" / DISTRIBUTION / "specs"


def reference_dir() -> Path | None:
    """Where the specs are: the source tree's `specs/`, else the wheel's installed copy."""
    for candidate in (
        Path(__file__).resolve().parent.parent / "specs",
        Path(sys.prefix) / INSTALLED_SPECS,
    ):
        if (candidate / "cli.md").is_file():
            return candidate
    return None


def root_help(summary: str, example: str) -> str:
    """A program's --help text: what it does, an example, and where its reference is."""
    specs = reference_dir()
    where = f"{specs}/cli.md" if specs else f"specs/cli.md of the {DISTRIBUTION} source"
    return (
        f"{summary}\n\nExample: {example}\n\nEvery command, its output and exit codes: "
        f"{where} (the other specs beside it define the formats and protocols)."
    )


def version_text(prog: str) -> str:
    """`PROG VERSION` of the installed distribution (`unknown` when run from a bare tree)."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{prog} {version}"


class CliShell:
    """One program's app, and the error handling around it.

    Args:
        prog: the program name, as users type it.
        commands: modules with a `register(app)` function that adds their commands.
        failures: the exception types that are an operational failure (exit 1).
        usage_error: the exception type that is a usage error (exit 2).
        summary: what the program does, for its --help.
        example: one typical command line, for its --help.
        hints: the program's words for the `hint` keys its library errors carry (a
            library names no flag; the CLI does, here). An unknown key prints as is.
    """

    def __init__(
        self,
        prog: str,
        commands: Iterable[ModuleType],
        failures: tuple[type[BaseException], ...],
        usage_error: type[BaseException],
        *,
        summary: str = "",
        example: str = "",
        hints: Mapping[str, str] | None = None,
    ) -> None:
        self.prog = prog
        self._errors = ErrorMap(prog, tuple(failures), usage_error, hints or {})
        self._verbose = False
        self.app = typer.Typer(
            name=prog,
            no_args_is_help=True,
            # typer's convention: --install-completion / --show-completion for the user's shell.
            add_completion=True,
            pretty_exceptions_enable=False,
            context_settings={"help_option_names": ["-h", "--help"]},
        )

        @self.app.callback(help=root_help(summary or prog, example or f"{prog} --help"))
        def _root(
            verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks of errors."),
            _version: bool = typer.Option(
                False,
                "--version",
                is_eager=True,
                callback=self._print_version,
                help="Print the version and exit.",
            ),
        ) -> None:
            self._verbose = verbose

        for module in commands:
            module.register(self.app)

    def _print_version(self, value: bool) -> None:
        # Eager, so it runs while parsing, before typer asks for a command.
        if value:
            print(version_text(self.prog))  # noqa: T201 - the guard answers --version itself
            raise typer.Exit(0)

    def fail(self, message: str) -> str:
        """Format one error line the way every command prints it."""
        return f"{self.prog}: error: {message}"

    def main(self, argv: list[str] | None = None) -> int:
        """Run the CLI; return the exit code (the console script exits with it).

        With `--json` among the arguments, an error is also one JSON object on stdout,
        `{"error": {"exit_code", "type", "message"}}` (specs/cli.md §2.2), so a script reading
        stdout gets an object either way; stderr keeps its one line.
        """
        code, line, exc = self._run(argv)
        if line is not None:
            print(line, file=sys.stderr)  # noqa: T201 - the guard prints every CLI's error line
            if exc is not None and _asks_json(sys.argv[1:] if argv is None else argv):
                message = line.split(": ", 2)[-1]
                error = {"exit_code": code, "type": type(exc).__name__, "message": message}
                print(json.dumps({"error": error}))  # noqa: T201 - and its JSON error (cli.md §1.2)
        return code

    def _run(self, argv: list[str] | None) -> tuple[int, str | None, BaseException | None]:
        self._verbose = False
        try:
            result = self.app(args=argv, prog_name=self.prog, standalone_mode=False)
        except typer.Exit as exc:
            return int(exc.exit_code), None, None
        except SystemExit as exc:
            # typer turns EPIPE on stdout (the reader went away: `| head`) into exit 1 after
            # wrapping the streams. The command's verdict is the exit code, which a reader
            # that stopped early must not turn into a failure (specs/cli.md §2).
            if exc.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
                _silence_stdout()
                return 0, None, None
            raise
        except (typer.Abort, KeyboardInterrupt):
            return 130, self.fail("interrupted"), None
        except typer.TyperException as exc:
            # Click's usage errors (vendored by typer): bad flag, missing argument.
            # With no arguments at all typer has already printed the help.
            return 2, (f"{self.prog}: usage: {one_line(exc)}" if str(exc) else None), exc
        except self._errors.handled as exc:  # KeyboardInterrupt is caught above
            mapped = self._errors.exit_for(exc)
            if self._verbose or mapped is None:
                raise
            return mapped[0], mapped[1], exc
        return (result if isinstance(result, int) else 0), None, None


def _asks_json(argv: list[str]) -> bool:
    # `--json` as a flag, not as the value of an option that takes text (`run -a --json`).
    takes_value = {"-a", "--args", "--env", "-e"}
    return any(
        word == "--json" and (i == 0 or argv[i - 1] not in takes_value)
        for i, word in enumerate(argv)
    )


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    finally:
        os.close(devnull)
