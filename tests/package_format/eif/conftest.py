# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Shared helpers for the EIF format tests: the AWS vector inputs and metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from package_format.eif import BuildMetadata, IdentityInfo, SectionSource, SectionType

EIF_DIR = Path(__file__).resolve().parents[2] / "vectors" / "aws" / "eif"

VECTOR_METADATA = IdentityInfo(
    image_name="tiny-x86_64",
    image_version="1.0",
    build=BuildMetadata(
        build_time="1970-01-01T00:00:00+00:00",
        build_tool="eif-test-vectors",
        build_tool_version="0.0.0",
        operating_system="Linux",
        kernel_version="0.0.0-test",
    ),
)


@pytest.fixture
def eif_vector(aws_vector):
    def _get(rel: str) -> bytes:
        return aws_vector(f"eif/{rel}").read_bytes()

    return _get


@pytest.fixture
def vector_sections(eif_vector) -> list[SectionSource]:
    return [
        SectionSource.from_bytes(SectionType.KERNEL, eif_vector("inputs/kernel.bin")),
        SectionSource.from_bytes(SectionType.CMDLINE, eif_vector("inputs/cmdline-x86_64.txt")),
        SectionSource.from_bytes(SectionType.METADATA, VECTOR_METADATA.to_bytes()),
        SectionSource.from_bytes(SectionType.RAMDISK, eif_vector("inputs/ramdisk0.bin")),
        SectionSource.from_bytes(SectionType.RAMDISK, eif_vector("inputs/ramdisk1.bin")),
    ]
