# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Typed refusals of data bundles (specs/threat-model.md §5.7, specs/rpc-protocol.md §6.3)."""

from __future__ import annotations

from enclave.errors import InputError
from enclave.runner.errors import BundleInvalidError, RunError
from package_format.rpc.codes import ErrorCode


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
