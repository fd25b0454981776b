# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Inputs that once escaped the CMS parser as untyped errors (tests/vectors/cms/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyasn1.codec.ber import decoder

from package_format.cms import CmsFormatError, parse_envelope
from package_format.cms import envelope as cms_envelope

VECTOR = (
    Path(__file__).resolve().parents[2]
    / "vectors"
    / "cms"
    / "contentinfo_pyasn1_attributeerror.der"
)


def test_pyasn1_attributeerror_input_is_a_format_error() -> None:
    data = VECTOR.read_bytes()
    # The library underneath still fails this way; the parser must turn it into a typed error.
    with pytest.raises(AttributeError):
        decoder.decode(data, asn1Spec=cms_envelope._EnvelopedContentInfo())
    with pytest.raises(CmsFormatError):
        parse_envelope(data)
