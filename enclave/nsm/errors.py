# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Typed errors of NSM access (device and simulator)."""

from __future__ import annotations

from enclave.errors import ExternalError, InputError, UsageError


class NsmError(ExternalError):
    """Base of NSM failures: the device, its driver, or the simulator's material."""


class NsmUnavailableError(NsmError):
    """`/dev/nsm` cannot be opened (not in an enclave, or no permission)."""


class NsmIoctlError(NsmError):
    """The NSM_IOCTL_RAW call failed at the operating-system level."""


class NsmResponseError(NsmError):
    """The NSM answered with an error or with a message of the wrong shape."""


class NsmArgumentError(UsageError):
    """A request argument is out of range (PCR index, random length, field size)."""


class SimPkiError(InputError):
    """The simulator's PKI directory is missing, unreadable or inconsistent."""
