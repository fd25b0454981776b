# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Typed errors of the runner (specs/threat-model.md §5); one class per refusal a test tells apart.

Each class carries `rpc_code`, the status the RPC server reports for it
(specs/rpc-protocol.md §6.3), so the server maps a runner error without a table of its own:
`getattr(exc, "rpc_code", ErrorCode.RUN_FAILED)`.
"""

from __future__ import annotations

from typing import ClassVar

from enclave.errors import EnclaveError, ExternalError, InputError
from package_format.rpc.codes import ErrorCode


class RunError(EnclaveError):
    """Base of every error a run can end with before the entrypoint's own exit status."""

    rpc_code: ClassVar[ErrorCode] = ErrorCode.RUN_FAILED


class BundleInvalidError(RunError, InputError):
    """The bundle does not parse, fails authentication, or its payload is damaged."""

    rpc_code = ErrorCode.BUNDLE_INVALID


class UntrustedBundleSignerError(BundleInvalidError):
    """The bundle is signed by a key that is not pinned in the enclave image."""

    rpc_code = ErrorCode.UNTRUSTED_SIGNER


class BundleRollbackError(BundleInvalidError):
    """The bundle's version is below the minimum the image pins for its name (a replay)."""


class BundleValidityError(RunError, InputError):
    """The bundle is outside its validity window on the enclave's clock."""

    rpc_code = ErrorCode.BUNDLE_EXPIRED


class BundleExpiredRunError(BundleValidityError):
    """The bundle's `expires` time has passed."""


class BundleNotYetValidRunError(BundleValidityError):
    """The bundle's `not_before` time is in the future."""


class EntrypointNotDeclaredError(RunError, InputError):
    """The requested entrypoint is not one the signed manifest declares."""

    rpc_code = ErrorCode.ENTRYPOINT_NOT_DECLARED


class BadRunArgumentError(RunError, InputError):
    """A run argument names a path outside the allowed roots, or uses `..`, `//` or a symlink."""

    rpc_code = ErrorCode.BAD_RUN_ARGUMENT


class EnvironmentMissingError(RunError, InputError):
    """The manifest names an app environment the image lacks (bundle-format.md §5.8)."""

    rpc_code = ErrorCode.ENVIRONMENT_MISSING


class KeyReleaseError(RunError, ExternalError):
    """The data key could not be obtained through attestation (KMS denied or unreachable)."""

    rpc_code = ErrorCode.KEY_RELEASE_FAILED


class RunSetupError(RunError, ExternalError):
    """The run could not be prepared or started (work directory, session files, process)."""


class RunTimedOutError(RunError, InputError):
    """The entrypoint ran past the run's time limit and was killed (no outputs are kept)."""

    rpc_code = ErrorCode.RUN_TIMED_OUT


class RunCancelledError(RunError):
    """The run was cancelled before its entrypoint started."""

    rpc_code = ErrorCode.CANCELLED
