# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Typed errors of the bundle format (specs/bundle-format.md §9).

One class per failure a reader must tell apart; each derives from one of the
groups in `package_format.errors`, so callers can catch a group or a case.
"""

from __future__ import annotations

from package_format.errors import (
    FormatError,
    IntegrityError,
    LimitExceededError,
    PackageFormatError,
    PolicyError,
    UnsupportedVersionError,
)


# Framing and encoding: specs/bundle-format.md §3, §4.
class BadMagicError(FormatError):
    """The input does not start with the bundle magic `NBNDL`."""


class UnsupportedBundleVersionError(UnsupportedVersionError):
    """The bundle declares a format version this code does not implement."""


class TruncatedHeaderError(FormatError):
    """The input ends inside the preamble, the header or the signature."""


class HeaderEncodingError(FormatError):
    """The header is not valid, canonical (deterministic) CBOR."""


class HeaderFieldError(FormatError):
    """A header or manifest field is missing, unknown, of the wrong type or out of range."""


class UnsafePathError(FormatError):
    """A file-table or entrypoint path is not a normalised, relative, safe POSIX path."""


class BundleLimitError(LimitExceededError):
    """A size or count in the bundle exceeds `BundleLimits`."""


class ManifestConfigError(FormatError):
    """The owner's `bundle.toml` is not valid TOML or does not follow its schema."""


class KeyFileError(FormatError):
    """A signing or public key file does not follow its format."""


# Authentication: specs/bundle-format.md §6, §7.
class BundleSignatureError(IntegrityError):
    """The Ed25519 signature over the header does not verify."""


class UntrustedSignerError(IntegrityError):
    """The header is signed by a key that is not in the caller's trusted set."""


class KeyCommitmentError(IntegrityError):
    """The data key does not match the header's key commitment (wrong or spliced key)."""


class SegmentAuthenticationError(IntegrityError):
    """A payload segment fails authentication (modified, or from another bundle)."""


class SegmentOrderError(IntegrityError):
    """A payload segment is authentic but sits at the wrong position (reordered, swapped)."""


class TruncatedPayloadError(IntegrityError):
    """The payload ends before the length the signed header declares."""


class TrailingDataError(IntegrityError):
    """Bytes follow the last payload segment."""


# Policy: specs/bundle-format.md §5.1 (validity window).
class BundleNotYetValidError(PolicyError):
    """The bundle's `not_before` time is in the future."""


class BundleExpiredError(PolicyError):
    """The bundle's `expires` time has passed."""


# API misuse: a bug in the caller, never bad input, so not a PackageFormatError (a CLI
# must not report it as a bad bundle). STYLE.md §3: misuse is a RuntimeError.
class ReaderStateError(RuntimeError):
    """`BundleReader` was used out of order (issue 19)."""


class SignatureNotVerifiedError(ReaderStateError):
    """The payload was requested before the header signature was verified."""


class PayloadAlreadyReadError(ReaderStateError):
    """The payload was requested a second time (it is a stream: it can be read once)."""


class PayloadSourceError(PackageFormatError):
    """A file handed to the writer did not deliver the size its file-table entry declares."""
