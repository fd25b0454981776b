# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Status codes carried in responses (specs/rpc-protocol.md §6).

Codes below 1000 are Linux errno values, so a FUSE layer can hand them to the
kernel as they are; codes from 1000 up are protocol and run errors.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Every status a response can carry; `OK` is the only success."""

    OK = 0
    # specs/rpc-protocol.md §6.1: filesystem errors, numerically Linux errno.
    EACCES = 13
    EBUSY = 16
    EEXIST = 17
    ENOTDIR = 20
    EISDIR = 21
    EINVAL = 22
    EFBIG = 27
    ENOSPC = 28
    ENAMETOOLONG = 36
    ENOTEMPTY = 39
    ENOENT = 2
    # specs/rpc-protocol.md §6.2: protocol errors.
    BAD_FRAME = 1000
    UNKNOWN_OP = 1001
    TOO_LARGE = 1002
    BUSY = 1003
    NOT_ALLOWED = 1004
    UNSUPPORTED_VERSION = 1005
    BAD_ARGS = 1006
    INTERNAL = 1007
    CANCELLED = 1008
    # specs/rpc-protocol.md §6.3: run failures reported by the runner.
    RUN_FAILED = 1100
    BUNDLE_INVALID = 1101
    ENTRYPOINT_NOT_DECLARED = 1102
    BUNDLE_EXPIRED = 1103
    KEY_RELEASE_FAILED = 1104
    UNTRUSTED_SIGNER = 1105
    BAD_RUN_ARGUMENT = 1106
    RUN_TIMED_OUT = 1107
    ENVIRONMENT_MISSING = 1108
    DATA_NOT_ALLOWED = 1110
    OUTPUT_TERMS_EXCEEDED = 1111

    @property
    def is_errno(self) -> bool:
        """Whether this code is a POSIX errno value (a filesystem error)."""
        return 0 < self.value < 1000


def errno_code(value: int) -> ErrorCode:
    """Map a numeric errno to its code, falling back to `EINVAL` for unlisted ones.

    Args:
        value: an errno number, e.g. from an `OSError`.

    Returns:
        The matching `ErrorCode`, or `ErrorCode.EINVAL`.
    """
    try:
        code = ErrorCode(value)
    except ValueError:
        return ErrorCode.EINVAL
    return code if code.is_errno else ErrorCode.EINVAL
