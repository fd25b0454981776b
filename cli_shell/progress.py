# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Byte progress for long steps, on stderr, only for a person watching (specs/cli.md §1.1).

Drawn with rich (typer depends on it): bytes done, rate and time left. Nothing is drawn when
stderr is not a terminal, with `--quiet`, or when the command answers in JSON, so scripts and
logs see only the command's own lines and stdout stays one JSON object.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["TransferLine", "byte_progress", "wanted"]


def _columns() -> tuple[ProgressColumn, ...]:
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )


def wanted(*, quiet: bool = False, as_json: bool = False, stream: TextIO | None = None) -> bool:
    """Whether to draw progress: a terminal on stderr, and neither --quiet nor --json."""
    stream = sys.stderr if stream is None else stream
    return not quiet and not as_json and stream.isatty()


@contextmanager
def byte_progress(
    label: str,
    total: int | None,
    *,
    quiet: bool = False,
    as_json: bool = False,
    stream: TextIO | None = None,
) -> Iterator[Callable[[int], None] | None]:
    """Yield `advance(nbytes)` drawing a bar for `total` bytes, or None when not `wanted`.

    A None total (unknown size) draws bytes and rate without a bar's end. The bar is removed
    when the step ends, so the command's own summary line follows a clean terminal line.
    """
    stream = sys.stderr if stream is None else stream
    if not wanted(quiet=quiet, as_json=as_json, stream=stream):
        yield None
        return
    console = Console(file=stream, stderr=stream is sys.stderr)
    with Progress(*_columns(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)

        def advance(nbytes: int) -> None:
            bar.advance(task, nbytes)

        yield advance


class TransferLine:
    """A `(done, total)` progress callback for steps whose total is known per file (uploads).

    Starts drawing on the first call (for a file of `total` bytes) and stops at `close()`;
    a new total (the next file) starts a new bar. Only for a terminal: callers create it when
    `wanted()` says so.
    """

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self._label = label
        self._stream = sys.stderr if stream is None else stream
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._total = -1

    def __call__(self, done: int, total: int) -> None:
        """`done` of `total` bytes of the current file are through."""
        if self._bar is None:
            console = Console(file=self._stream, stderr=self._stream is sys.stderr)
            self._bar = Progress(*_columns(), console=console, transient=True)
            self._bar.start()
        if total != self._total or self._task is None:
            self._task = self._bar.add_task(self._label, total=total)
            self._total = total
        self._bar.update(self._task, completed=done)

    def close(self) -> None:
        """Remove the bar (the command's own lines follow)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
