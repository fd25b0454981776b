# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The error guard every CLI shares, without typer: one stderr line and an exit code.

Exit codes (specs/cli.md): 1 operational or verification failure, 2 usage error, 130
interrupted. `CliShell` (shell.py) maps the errors of its typer app with an `ErrorMap`;
a command that must start without typer (`user-runtime run`) runs inside `guard` with the
same map, so both paths print the same line and exit with the same code. A NamedTuple, not
a dataclass: building one costs `run`'s start-up ~2 ms.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import NamedTuple, TextIO

INTERRUPTED = 130


class ErrorMap(NamedTuple):
    """A program's errors: which are failures (exit 1), which a usage error (exit 2), hints.

    Attributes:
        prog: The program name, as users type it (each line starts with it).
        failures: The exception types that are an operational failure; OSError is one too.
        usage_error: The exception type that is a usage error.
        hints: The program's words for the `hint` keys its library errors carry.
    """

    prog: str
    failures: tuple[type[BaseException], ...]
    usage_error: type[BaseException]
    hints: Mapping[str, str] = {}

    @property
    def handled(self) -> tuple[type[BaseException], ...]:
        """Every exception type `exit_for` maps."""
        return (KeyboardInterrupt, self.usage_error, *self.failures, OSError)

    def exit_for(self, exc: BaseException) -> tuple[int, str] | None:
        """The exit code and the stderr line for `exc`; None when it is not one of `handled`."""
        if isinstance(exc, KeyboardInterrupt):
            return INTERRUPTED, f"{self.prog}: error: interrupted"
        if isinstance(exc, self.usage_error):
            return 2, f"{self.prog}: usage: {one_line(exc, self.hints)}"
        if isinstance(exc, (*self.failures, OSError)):
            return 1, f"{self.prog}: error: {one_line(exc, self.hints)}"
        return None


def guard(errors: ErrorMap, command: Callable[[], int], stderr: TextIO | None = None) -> int:
    """Run `command` and return its exit code; an error of `errors` becomes its line and code.

    Any other exception propagates (a bug shows its traceback).
    """
    try:
        return command()
    except errors.handled as exc:
        mapped = errors.exit_for(exc)
        assert mapped is not None
        stream = sys.stderr if stderr is None else stderr
        stream.write(f"{mapped[1]}\n")
        stream.flush()
        return mapped[0]


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
