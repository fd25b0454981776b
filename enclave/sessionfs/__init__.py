# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The session filesystem: the tree the user syncs into, held in enclave RAM.

The enclave has no disk, so files are held in RAM (`enclave.file_content`: a
`bytearray` while small, a memfd once large) in a dict tree, under a
memory budget (ENOSPC past it). Paths are validated, never normalised: a path
is relative, its components are separated by exactly one `/`, and `.`, `..`,
empty components, NUL and over-long names are refused (specs/rpc-protocol.md
§8). There are no symlinks, hard links or special files, and no operation
makes one. Every method is thread-safe (one lock).

Its parts: `_nodes` (limits, the error, the stat map, the nodes), `_tree` (paths and the
RPC's filesystem operations) and `_files` (whole files and trees, for the runner and the
receipt: `SessionFs` serves as the runner's `SessionFiles`).
"""

from enclave.sessionfs._files import SessionFs
from enclave.sessionfs._nodes import (
    ENTRY_OVERHEAD,
    TOP_LEVEL,
    SessionFsError,
    SessionLimits,
    StatInfo,
)

__all__ = [
    "ENTRY_OVERHEAD",
    "TOP_LEVEL",
    "SessionFs",
    "SessionFsError",
    "SessionLimits",
    "StatInfo",
]
