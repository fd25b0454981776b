# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What a request in flight waits on, and how a `puts` reply becomes one verdict per file.

A call waits on a `Waiter` for its reply; a pipelined request holds a `WriteSlot` (a `puts`, a
`PutsSlot`: one key per file) and counts in its key's `FileState` until `flush` (§7.3, §7.7).
"""

from __future__ import annotations

from typing import Any

from package_format.rpc import ErrorCode, Response
from user_runtime.errors import ExternalError
from user_runtime.rpc.values import RemoteError, remote_error

_CODES = frozenset(code.value for code in ErrorCode)


class Waiter:
    """A call waiting for its reply, or for the error that lost it."""

    def __init__(self) -> None:
        self.done = False
        self.response: Response | None = None
        self.error: ExternalError | None = None

    def _put(self, item: Response | ExternalError) -> None:
        # As RunHandle._put: the connection hands over the reply or the error.
        if isinstance(item, Response):
            self.response = item
        else:
            self.error = item
        self.done = True


class WriteSlot:
    """A pipelined request in flight: its `flush` key and body size (for the window)."""

    def __init__(self, key: str, size: int) -> None:
        self.key = key
        self.size = size


class PutsSlot(WriteSlot):
    """A pipelined `puts` in flight: one key per file, in the request's order (§7.7)."""

    def __init__(self, keys: list[str], paths: list[str], size: int) -> None:
        super().__init__(keys[0], size)
        self.keys = keys
        self.paths = paths


class FileState:
    """One `flush` key's requests in flight and the first error they met."""

    def __init__(self) -> None:
        self.inflight = 0
        self.error: ExternalError | None = None


def puts_errors(slot: PutsSlot, response: Response) -> dict[int, ExternalError]:
    """The error of each refused file of a `puts`, by its index in the request (§7.7)."""
    failed = response.args.get("failed")
    errors: dict[int, ExternalError] = {}
    if not response.ok:
        errors = dict.fromkeys(range(len(slot.keys)), remote_error(response))
    elif not isinstance(failed, list) or not _well_formed(failed, len(slot.keys)):
        bad = RemoteError(int(ErrorCode.INTERNAL), "INTERNAL", "puts: malformed reply")
        errors = dict.fromkeys(range(len(slot.keys)), bad)
    else:
        for index, status in failed:
            name = ErrorCode(status).name if status in _CODES else f"E{status}"
            errors[index] = RemoteError(status, name, f"put {slot.paths[index]}: {name}")
    return errors


def _well_formed(failed: list[Any], count: int) -> bool:
    """Whether a `puts` reply's `failed` holds only [index < count, status > 0] pairs."""
    return all(
        isinstance(item, list)
        and len(item) == 2
        and all(type(v) is int for v in item)
        and 0 <= item[0] < count
        and item[1] > 0
        for item in failed
    )
