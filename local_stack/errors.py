# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The error base of `local_stack`; subclasses are grouped by who is at fault."""

from __future__ import annotations

from package_format.errors import DetailedError


class LocalStackError(DetailedError):
    """Base of every error this package raises on purpose.

    The CLI catches it once and prints `str(error)` as one line, then its `hint`.
    """


class UsageError(LocalStackError):
    """The caller asked for something impossible (bad flag combination, bad value)."""


class InputError(LocalStackError):
    """A file or value the caller supplied is missing, unreadable or invalid."""


class ExternalError(LocalStackError):
    """Something outside our control failed (network, service, device, disk)."""
