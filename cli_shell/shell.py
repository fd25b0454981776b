# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`CliShell`: a typer app whose `main` turns every error into one stderr line and an exit code.

Exit codes (specs/cli.md): 0 success, 1 operational or verification failure, 2 usage
error, 130 interrupted. Every error is one line on stderr, prefixed with the program
name; `--verbose` re-raises it with its traceback instead. Only the CLIs print or exit.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from types import ModuleType

import typer


class CliShell:
    """One program's app, and the error handling around it.

    Args:
        prog: the program name, as users type it.
        commands: modules with a `register(app)` function that adds their commands.
        failures: the exception types that are an operational failure (exit 1).
        usage_error: the exception type that is a usage error (exit 2).
        hints: the program's words for the `hint` keys its library errors carry (a
            library names no flag; the CLI does, here). An unknown key prints as is.
    """

    def __init__(
        self,
        prog: str,
        commands: Iterable[ModuleType],
        failures: tuple[type[BaseException], ...],
        usage_error: type[BaseException],
        hints: Mapping[str, str] | None = None,
    ) -> None:
        self.prog = prog
        self._hints: Mapping[str, str] = hints or {}
        self._failures: tuple[type[BaseException], ...] = (*failures, OSError)
        self._usage_error = usage_error
        self._verbose = False
        self.app = typer.Typer(
            name=prog,
            no_args_is_help=True,
            add_completion=False,
            pretty_exceptions_enable=False,
            context_settings={"help_option_names": ["-h", "--help"]},
        )

        @self.app.callback()
        def _root(
            verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks of errors."),
        ) -> None:
            """See specs/cli.md for every command, its output and its exit codes."""
            self._verbose = verbose

        for module in commands:
            module.register(self.app)

    def fail(self, message: str) -> str:
        """Format one error line the way every command prints it."""
        return f"{self.prog}: error: {message}"

    def main(self, argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one return per exit code
        """Run the CLI; return the exit code (the console script exits with it)."""
        self._verbose = False
        try:
            result = self.app(args=argv, prog_name=self.prog, standalone_mode=False)
        except typer.Exit as exc:
            return int(exc.exit_code)
        except typer.Abort:
            print(self.fail("interrupted"), file=sys.stderr)
            return 130
        except typer.TyperException as exc:
            # Click's usage errors (vendored by typer): bad flag, missing argument.
            # With no arguments at all typer has already printed the help.
            if str(exc):
                print(f"{self.prog}: usage: {one_line(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(self.fail("interrupted"), file=sys.stderr)
            return 130
        except self._usage_error as exc:
            if self._verbose:
                raise
            print(f"{self.prog}: usage: {one_line(exc, self._hints)}", file=sys.stderr)
            return 2
        except self._failures as exc:
            if self._verbose:
                raise
            print(self.fail(one_line(exc, self._hints)), file=sys.stderr)
            return 1
        return result if isinstance(result, int) else 0


def one_line(exc: BaseException, hints: Mapping[str, str] | None = None) -> str:
    """An exception as one line of text (OSError: `filename: reason`), then its hint.

    `hint` (package errors, issue 19) is a key of `hints` or plain text.
    """
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror.lower()}"
    hint = getattr(exc, "hint", None)
    if isinstance(hint, str) and hint:
        text = f"{text} (hint: {(hints or {}).get(hint, hint)})"
    return " ".join(text.split())
