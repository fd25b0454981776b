# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Typed errors of the runner (specs/threat-model.md §5); one class per refusal a test tells apart.

`RunError` is the run's branch of the one error root (`enclave.errors.EnclaveError`): each
class sets `rpc_code`, the status the RPC server reports for it (specs/rpc-protocol.md §6.3),
and the server answers a run that raised one with that code and its message. Data bundles'
refusals (threat-model.md §5.7) are at the end.
"""

from __future__ import annotations

from enclave.errors import EnclaveError, ExternalError, InputError, UsageError
from package_format.rpc.codes import ErrorCode


class RunError(EnclaveError):
    """Base of every error a run can end with before the entrypoint's own exit status."""

    rpc_code = ErrorCode.RUN_FAILED


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


class NoRunnerError(RunError, UsageError):
    """The server was started without a runner (no image config): it refuses every run."""

    rpc_code = ErrorCode.NOT_ALLOWED


# Data bundles (specs/threat-model.md §5.7).
class DataNotAllowedError(RunError, InputError):
    """A pairing one side's signed manifest does not allow (before any KMS call for it)."""

    rpc_code = ErrorCode.DATA_NOT_ALLOWED


class DataSignerNotListedError(DataNotAllowedError):
    """The data bundle is signed by a key the app's `[[data]]` does not list for its name."""


class DataAppNotListedError(DataNotAllowedError):
    """The data bundle's `[[apps]]` does not list the app (name, signer, version range)."""


class DataVersionOutOfRangeError(DataNotAllowedError):
    """The data bundle's version is outside the app's range for it."""


class DataMissingError(DataNotAllowedError):
    """A `required` data bundle of the app's `[[data]]` was not given."""


class DataDuplicateError(DataNotAllowedError):
    """One data bundle (by path or by name) is given twice in one run."""


class WrongBundleKindError(BundleInvalidError):
    """An app bundle given as `--data`, or a data bundle given as the app (`-f`)."""


class DataTooLargeError(DataNotAllowedError):
    """The run's bundles do not fit in the enclave's memory for plaintext."""


class OutputTermsExceededError(RunError, InputError):
    """The run released more than a bundle's output terms allow; it was stopped."""

    rpc_code = ErrorCode.OUTPUT_TERMS_EXCEEDED
