# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The error base of `package_format`, grouped by who is at fault.

Every module raises a subclass of one of these groups, so callers can catch a
group (`IntegrityError`) or a precise case (`SegmentTagError`), and the CLIs
catch `PackageFormatError` once to print one line.
"""

from __future__ import annotations


class DetailedError(Exception):
    """An error with structured fields a CLI turns into one line and a hint.

    `str(error)` says what is wrong; `field` names the input at fault (a parameter or
    field name, never a CLI flag: the CLI maps it) and `hint` what the caller can do.
    Both are optional and keyword-only, so every subclass keeps its positional message.
    Every package's error base derives from it (issue 19).
    """

    field: str | None = None
    hint: str | None = None

    def __init__(self, *args: object, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(*args)
        if field is not None:
            self.field = field
        if hint is not None:
            self.hint = hint


class PackageFormatError(DetailedError):
    """Base of every error this package raises."""


# Hostile or broken input: the data is at fault.
class FormatError(PackageFormatError):
    """Input does not follow the format (bad magic, bad encoding, bad field)."""


class IntegrityError(PackageFormatError):
    """Input is well-formed but fails authentication (signature, tag, digest, CRC)."""


class UnsupportedVersionError(FormatError):
    """Input declares a format version this code does not implement."""


class LimitExceededError(FormatError):
    """Input exceeds a size or count limit set for untrusted data."""


class PolicyError(PackageFormatError):
    """Input is authentic but a rule forbids using it (expired, not yet valid, revoked)."""
