# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The session filesystem's limits, error, stat map and nodes (specs/rpc-protocol.md §8)."""

from __future__ import annotations

import stat as st
from dataclasses import dataclass, field

from enclave.errors import InputError
from enclave.file_content import FileContent
from enclave.stream_digest import StreamDigest
from package_format.rpc.codes import ErrorCode

TOP_LEVEL = ("encrypted", "dataset", "model", "output")
ENTRY_OVERHEAD = 128  # bytes: CBOR of [name, stat] beyond the name (stat map <= 113)
_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SessionLimits:
    """Limits on what the session filesystem holds (specs/rpc-protocol.md §8.3)."""

    budget_bytes: int = 2 * 1024**3
    """Total bytes of file content; writes past it fail with ENOSPC."""
    max_nodes: int = 200_000
    """Files plus directories; creating more fails with ENOSPC."""
    max_name: int = 255
    """Longest path component in UTF-8 bytes (ENAMETOOLONG)."""
    max_path: int = 4096
    """Longest path in UTF-8 bytes (ENAMETOOLONG)."""


class SessionFsError(InputError):
    """A session filesystem operation failed; `code` is the POSIX errno to report (§6.1)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message, rpc_code=code)

    @property
    def code(self) -> ErrorCode:
        """The errno code reported for this error (its `rpc_code`)."""
        return self.rpc_code


@dataclass(frozen=True)
class StatInfo:
    """What `stat` reports: full `st_mode` (type and permission bits), size and times."""

    mode: int
    size: int
    nlink: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int

    @property
    def is_dir(self) -> bool:
        """Whether this is a directory."""
        return st.S_ISDIR(self.mode)

    def to_wire(self) -> dict[str, int]:
        """Return the map sent in replies (specs/rpc-protocol.md §7.2)."""
        return {
            "mode": self.mode,
            "size": self.size,
            "nlink": self.nlink,
            "atime_ns": self.atime_ns,
            "mtime_ns": self.mtime_ns,
            "ctime_ns": self.ctime_ns,
        }


@dataclass
class _Node:
    mode: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int


@dataclass
class _File(_Node):
    content: FileContent = field(default_factory=FileContent)
    digest: StreamDigest = field(default_factory=StreamDigest)  # specs/receipts.md §4.1


@dataclass
class _Dir(_Node):
    children: dict[str, _File | _Dir] = field(default_factory=dict)


def _err(code: ErrorCode, path: str, what: str) -> SessionFsError:
    return SessionFsError(code, f"{path or '/'}: {what}")
