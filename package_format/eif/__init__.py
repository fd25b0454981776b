# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""AWS Nitro Enclave Image Files: layout, PCRs, newc cpio, signing (specs/enclave-image.md)."""

from __future__ import annotations

from package_format.eif.cpio import (
    LINUXKIT_MTIME,
    CpioEntry,
    archive_size,
    build_archive,
    iter_archive,
)
from package_format.eif.cpio_reader import (
    CpioLimits,
    CpioMember,
    extract_files,
    iter_cpio,
    read_cpio,
)
from package_format.eif.describe import describe
from package_format.eif.layout import FLAG_ARCH_ARM64, EifHeader, SectionType
from package_format.eif.metadata import BuildMetadata, IdentityInfo, kernel_config_info
from package_format.eif.pcr import HashAlgorithmString, Measurements, extend0
from package_format.eif.reader import EifImage, EifLimits, EifSection, SectionReader, read_eif
from package_format.eif.signature import PcrSignature, pcr_info_payload
from package_format.eif.signing import sign_eif
from package_format.eif.writer import SectionSource, WriteResult, write_eif

__all__ = [
    "FLAG_ARCH_ARM64",
    "LINUXKIT_MTIME",
    "BuildMetadata",
    "CpioEntry",
    "CpioLimits",
    "CpioMember",
    "EifHeader",
    "EifImage",
    "EifLimits",
    "EifSection",
    "HashAlgorithmString",
    "IdentityInfo",
    "Measurements",
    "PcrSignature",
    "SectionReader",
    "SectionSource",
    "SectionType",
    "WriteResult",
    "archive_size",
    "build_archive",
    "describe",
    "extend0",
    "extract_files",
    "iter_archive",
    "iter_cpio",
    "kernel_config_info",
    "pcr_info_payload",
    "read_cpio",
    "read_eif",
    "sign_eif",
    "write_eif",
]
