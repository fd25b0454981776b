# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The error base of `enclave`; subclasses are grouped by who is at fault.

Every error carries `rpc_code`, the status the RPC server reports for it
(specs/rpc-protocol.md §6), so the server answers any of them without a table of its own:
a class sets its code once, an error that knows it only at run time (a filesystem errno)
passes `rpc_code=` when raised.
"""

from __future__ import annotations

from package_format.errors import DetailedError
from package_format.rpc.codes import ErrorCode


class EnclaveError(DetailedError):
    """Base of every error this package raises on purpose.

    The CLI catches it once and prints `str(error)` as one line, then its `hint`; the RPC
    server answers it with `rpc_code` and `str(error)`.
    """

    rpc_code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        *args: object,
        field: str | None = None,
        hint: str | None = None,
        rpc_code: ErrorCode | None = None,
    ) -> None:
        super().__init__(*args, field=field, hint=hint)
        if rpc_code is not None:
            self.rpc_code = rpc_code


class UsageError(EnclaveError):
    """The caller asked for something impossible (bad flag combination, bad value)."""

    rpc_code = ErrorCode.BAD_ARGS


class InputError(EnclaveError):
    """A file or value the caller supplied is missing, unreadable or invalid."""


class ExternalError(EnclaveError):
    """Something outside our control failed (network, service, device, disk)."""
