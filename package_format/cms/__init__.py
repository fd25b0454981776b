# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""KMS `CiphertextForRecipient`: CMS EnvelopedData, open and build (specs/attestation.md §9)."""

from package_format.cms.build import build_enveloped_data
from package_format.cms.envelope import (
    DEFAULT_CMS_LIMITS,
    CmsLimits,
    RecipientEnvelope,
    open_envelope,
    parse_envelope,
    subject_key_identifier,
)
from package_format.cms.errors import (
    CmsDecryptError,
    CmsError,
    CmsFormatError,
    CmsLimitError,
    CmsUnsupportedError,
    RecipientMismatchError,
)

__all__ = [
    "DEFAULT_CMS_LIMITS",
    "CmsDecryptError",
    "CmsError",
    "CmsFormatError",
    "CmsLimitError",
    "CmsLimits",
    "CmsUnsupportedError",
    "RecipientEnvelope",
    "RecipientMismatchError",
    "build_enveloped_data",
    "open_envelope",
    "parse_envelope",
    "subject_key_identifier",
]
