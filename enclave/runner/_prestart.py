# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The next run's Python interpreter, started before the run (`RunnerConfig.prestart`).

`Prestart` is the part of `enclave.runner.runner.Runner` that keeps one `Zygote` waiting, so a
run does not wait for an interpreter to start.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from enclave.runner._process import _entry_env
from enclave.runner.zygote import Zygote

if TYPE_CHECKING:
    from enclave.runner.api import RunnerConfig


@dataclass
class _Spare:
    """The next run's Python interpreter, started before the run (no directory yet)."""

    zygote: Zygote | None


class Prestart:
    """Starts and hands out the next run's interpreter."""

    _config: RunnerConfig
    _spare: _Spare | None
    _spare_thread: threading.Thread | None
    _closed: bool

    def warm(self) -> None:
        """Start the next run's interpreter in the background (`prestart`)."""
        if self._config.prestart and self._spare is None and self._spare_thread is None:
            self._spare_thread = threading.Thread(target=self._make_spare, daemon=True)
            self._spare_thread.start()

    def settle(self) -> None:
        """Wait until the background preparation of the next run (if any) is done."""
        thread = self._spare_thread
        if thread is not None:
            thread.join()

    def close(self) -> None:
        """Kill a waiting interpreter (idempotent)."""
        self._closed = True
        spare = self._take_spare()
        if spare is not None:
            _drop_spare(spare)

    def _make_spare(self) -> None:
        try:
            zygote = Zygote(self._config.python, _entry_env(self._config.python))
        except OSError:
            return  # the run starts its interpreter itself (and reports a failure)
        self._spare = _Spare(zygote)
        if self._closed:
            _drop_spare(self._take_spare_now())

    def _take_spare_now(self) -> _Spare:
        spare, self._spare = self._spare, None
        assert spare is not None
        return spare

    def _take_spare(self) -> _Spare | None:
        thread, self._spare_thread = self._spare_thread, None
        if thread is not None:
            thread.join()
        spare, self._spare = self._spare, None
        return spare


def _drop_spare(spare: _Spare) -> None:
    if spare.zygote is not None:
        spare.zygote.discard()
