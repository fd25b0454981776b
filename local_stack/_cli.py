# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The `local-stack` command line: a thin shell over the library.

Only this module (and the `_cli_*` modules it registers) prints or exits.
Exit codes (specs/cli.md): 0 success, 1 operational or verification failure,
2 usage error, 130 interrupted. Every error is one line on stderr, prefixed
with the program name; `--verbose` re-raises it with its traceback instead.
"""

from __future__ import annotations

import sys

import typer

from local_stack import _cli_stack
from local_stack.errors import LocalStackError, UsageError
from package_format.errors import PackageFormatError

PROG = "local-stack"

app = typer.Typer(
    name=PROG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"verbose": False}


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks of errors."),
) -> None:
    """See specs/cli.md for every command, its output and its exit codes."""
    _state["verbose"] = verbose


for _module in (_cli_stack,):
    _module.register(app)


def fail(message: str) -> str:
    """Format one error line the way every command prints it."""
    return f"{PROG}: error: {message}"


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one return per exit code
    """Run the CLI; return the exit code (the console script exits with it)."""
    _state["verbose"] = False
    try:
        result = app(args=argv, prog_name=PROG, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print(fail("interrupted"), file=sys.stderr)
        return 130
    except typer.TyperException as exc:
        # Click's usage errors (vendored by typer): bad flag, missing argument.
        # With no arguments at all typer has already printed the help.
        if str(exc):
            print(f"{PROG}: usage: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(fail("interrupted"), file=sys.stderr)
        return 130
    except UsageError as exc:
        if _state["verbose"]:
            raise
        print(f"{PROG}: usage: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (LocalStackError, PackageFormatError, OSError) as exc:
        if _state["verbose"]:
            raise
        print(fail(_one_line(exc)), file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror.lower()}"
    return " ".join(text.split())


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
