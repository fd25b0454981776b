# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What the sync layer needs of an enclave client: `SessionClient` (specs/rpc-protocol.md §7).

A structural subset of `EnclaveClient`, so the sync modules and their tests can use a
fake client without a server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from package_format.errors import DetailedError
from user_runtime.rpc.client import PutFile

__all__ = ["ENCLAVE_ERRORS", "RemoteStat", "SessionClient"]

#: What a `SessionClient` raises when the enclave refuses, goes away or answers badly: the
#: project's own errors (`RemoteError`, `ConnectionLostError`, a bad frame) and the OS's.
#: Anything else is a bug and propagates.
ENCLAVE_ERRORS = (DetailedError, OSError)


class RemoteStat(Protocol):
    """What the enclave reports for one entry (specs/rpc-protocol.md §7.2)."""

    @property
    def mode(self) -> int:
        """Full `st_mode`."""

    @property
    def size(self) -> int:
        """Size in bytes."""

    @property
    def atime_ns(self) -> int:
        """Access time."""

    @property
    def mtime_ns(self) -> int:
        """Modification time."""

    @property
    def ctime_ns(self) -> int:
        """Change time."""

    @property
    def nlink(self) -> int:
        """Link count."""


class SessionClient(Protocol):
    """The enclave client methods the sync layer uses (a subset of `EnclaveClient`)."""

    def stat(self, path: str) -> RemoteStat:
        """Stat an entry."""

    def listdir(self, path: str) -> Sequence[tuple[str, RemoteStat]]:
        """List a folder with the status of each entry."""

    def mkdir(self, path: str, mode: int) -> None:
        """Create a folder."""

    def rmdir(self, path: str) -> None:
        """Remove an empty folder."""

    def unlink(self, path: str) -> None:
        """Remove a file."""

    def rename(self, src: str, dst: str) -> None:
        """Rename an entry."""

    def create(self, path: str, mode: int, *, truncate: bool, exclusive: bool) -> None:
        """Create a file (or truncate an existing one)."""

    def truncate(self, path: str, size: int) -> None:
        """Set a file's size."""

    def chmod(self, path: str, mode: int) -> None:
        """Set permission bits."""

    def utimens(self, path: str, atime_ns: int, mtime_ns: int) -> None:
        """Set times."""

    def read(self, path: str, offset: int, length: int) -> bytes:
        """Read a range."""

    def write_pipelined(
        self, path: str, offset: int, data: bytes | memoryview, *, key: str | None = None
    ) -> None:
        """Queue a write; its error surfaces on `flush(key or path)`."""

    def write_pipelined_from(
        self, path: str, offset: int, fd: int, length: int, *, key: str | None = None
    ) -> None:
        """Queue a write of `fd`'s bytes at `offset`; its error surfaces on `flush(key)`."""

    def call_pipelined(self, op: str, args: dict[str, Any], *, key: str) -> None:
        """Queue a bodiless request; its error surfaces on `flush(key)`."""

    def put(self, path: str, data: bytes | memoryview, mode: int = 0o644) -> int:
        """Make `path` a file holding exactly `data`, in one request."""

    def put_pipelined(
        self, path: str, data: bytes | memoryview, mode: int = 0o644, *, key: str | None = None
    ) -> None:
        """Queue a `put`; its error surfaces on `flush(key or path)`."""

    def puts_pipelined(self, files: Sequence[PutFile]) -> None:
        """Queue many `put`s in one request; each file's error surfaces on `flush(its key)`."""

    def puts_fits(self, count: int, size: int, path_bytes: int) -> bool:
        """Whether that many files, bytes and path bytes fit one `puts`."""

    def flush(self, key: str) -> None:
        """Wait for the writes under `key`; raise the first error."""

    def statfs(self) -> Mapping[str, int]:
        """The enclave's budget."""

    def close(self) -> None:
        """Close the connection."""

    @property
    def connected(self) -> bool:
        """Whether the connection is still up (the client notices a close at once)."""
