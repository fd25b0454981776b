# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Progress is drawn for a person at a terminal, and never otherwise (specs/cli.md §2.1)."""

from __future__ import annotations

import io

from cli_shell.progress import TransferLine, byte_progress, wanted


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_bytes_rate_and_time_left() -> None:
    stream = _Tty()
    with byte_progress("uploading", 4 << 20, stream=stream) as advance:
        assert advance is not None
        for _ in range(4):
            advance(1 << 20)
    assert "uploading" in stream.getvalue()
    assert "MiB" in stream.getvalue()


def test_pipe_gets_nothing() -> None:
    stream = io.StringIO()  # not a terminal: a log, a script, CI
    with byte_progress("uploading", 10, stream=stream) as advance:
        assert advance is None
    assert stream.getvalue() == ""


def test_quiet_and_json_turn_it_off_even_on_a_terminal() -> None:
    assert wanted(stream=_Tty())
    assert not wanted(quiet=True, stream=_Tty())
    assert not wanted(as_json=True, stream=_Tty())


def test_transfer_line_draws_each_file_then_goes_away() -> None:
    stream = _Tty()
    line = TransferLine("uploading app.nb", stream=stream)
    for done in range(0, 5 << 20, 1 << 20):
        line(done, 4 << 20)
    line(1 << 20, 2 << 20)  # the next file (a data bundle): a new bar
    line.close()
    text = stream.getvalue()
    assert "uploading app.nb" in text
    assert "MiB" in text
