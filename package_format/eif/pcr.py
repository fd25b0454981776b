# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""PCR0/1/2/8 of an enclave image (specs/enclave-image.md §4).

PCR0 = extend0(SHA384(kernel || cmdline || every ramdisk)),
PCR1 = extend0(SHA384(kernel || cmdline || first ramdisk)),
PCR2 = extend0(SHA384(second and later ramdisks)),
PCR8 = extend0(SHA384(DER of the signing certificate)),
with extend0(d) = SHA384(48 zero bytes || d). Metadata and signature never count.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

DIGEST_SIZE = 48
ZERO_PCR = bytes(DIGEST_SIZE)


class HashAlgorithmString(enum.StrEnum):
    """The `HashAlgorithm` string nitro-cli prints, by nitro-cli version (§4.2)."""

    NITRO_CLI_1_4 = "Sha384 { ... }"
    NITRO_CLI_1_5 = "Sha512_48 { .. }"


DEFAULT_HASH_ALGORITHM = HashAlgorithmString.NITRO_CLI_1_4


def extend0(digest: bytes) -> bytes:
    """Extend the all-zero PCR once with `digest` (TPM-style)."""
    return hashlib.sha384(ZERO_PCR + digest).digest()


def pcr8_from_cert_der(cert_der: bytes) -> bytes:
    """PCR8 of an image signed with the certificate whose DER is `cert_der`."""
    return extend0(hashlib.sha384(cert_der).digest())


@dataclass(frozen=True)
class Measurements:
    """The PCRs derivable from an EIF (raw 48-byte values)."""

    pcr0: bytes
    pcr1: bytes
    pcr2: bytes
    pcr8: bytes | None = None

    def to_json(self, hash_algorithm: str = DEFAULT_HASH_ALGORITHM) -> dict[str, str]:
        """The `Measurements` object nitro-cli prints (keys sorted, lowercase hex)."""
        out = {
            "HashAlgorithm": str(hash_algorithm),
            "PCR0": self.pcr0.hex(),
            "PCR1": self.pcr1.hex(),
            "PCR2": self.pcr2.hex(),
        }
        if self.pcr8 is not None:
            out["PCR8"] = self.pcr8.hex()
        return out


def measure_sections(sections: list[tuple[int, bytes]], cert_der: bytes | None) -> Measurements:
    """Compute the PCRs of in-memory sections given in file order (reference helper).

    Args:
        sections: (section type, data) pairs; types other than 1-3 are skipped.
        cert_der: DER of the signing certificate, or None when unsigned.
    """
    h0, h1, h2 = hashlib.sha384(), hashlib.sha384(), hashlib.sha384()
    ramdisks = 0
    for stype, data in sections:
        if stype in (1, 2):
            h0.update(data)
            h1.update(data)
        elif stype == 3:
            h0.update(data)
            (h1 if ramdisks == 0 else h2).update(data)
            ramdisks += 1
    return Measurements(
        pcr0=extend0(h0.digest()),
        pcr1=extend0(h1.digest()),
        pcr2=extend0(h2.digest()),
        pcr8=None if cert_der is None else pcr8_from_cert_der(cert_der),
    )
