# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The NSM interface every implementation (device, simulator, test fakes) provides.

Message semantics follow aws-nitro-enclaves-nsm-api `src/api/mod.rs`
(specs/attestation.md §10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from enclave.nsm.errors import NsmArgumentError

# nsm-api limits (specs/attestation.md §10.2).
MAX_PCR_INDEX = 31
MAX_RANDOM_BYTES = 256
MAX_ATTESTATION_FIELD_BYTES = 1024


@dataclass(frozen=True)
class PcrDescription:
    """One PCR as `DescribePCR` reports it.

    Attributes:
        locked: whether the PCR can no longer be extended.
        data: the PCR value (48 bytes for SHA-384).
    """

    locked: bool
    data: bytes


@dataclass(frozen=True)
class NsmDescription:
    """The module description `DescribeNSM` returns.

    Attributes:
        version: (major, minor, patch) of the NSM.
        module_id: the module id (also in every attestation document).
        max_pcrs: number of PCRs.
        locked_pcrs: indices of locked PCRs.
        digest: the PCR digest name, e.g. `"SHA384"`.
    """

    version: tuple[int, int, int]
    module_id: str
    max_pcrs: int
    locked_pcrs: tuple[int, ...]
    digest: str


@runtime_checkable
class Nsm(Protocol):
    """What the enclave needs from the Nitro Secure Module."""

    def attestation(
        self,
        public_key: bytes | None = None,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
    ) -> bytes:
        """Return a signed attestation document (COSE_Sign1) carrying the given fields.

        Raises:
            NsmArgumentError: a field is longer than 1024 bytes.
            NsmError: the module failed.
        """
        ...

    def describe_pcr(self, index: int) -> PcrDescription:
        """Return the value and lock state of PCR `index` (0..31).

        Raises:
            NsmArgumentError: `index` is out of range.
            NsmError: the module failed.
        """
        ...

    def get_random(self, length: int) -> bytes:
        """Return `length` (1..256) random bytes from the module.

        Raises:
            NsmArgumentError: `length` is out of range.
            NsmError: the module failed.
        """
        ...

    def describe(self) -> NsmDescription:
        """Return the module description.

        Raises:
            NsmError: the module failed.
        """
        ...


def check_attestation_fields(
    public_key: bytes | None, user_data: bytes | None, nonce: bytes | None
) -> None:
    """Check the optional attestation request fields against the 1024-byte limit.

    Raises:
        NsmArgumentError: a field is too long.
    """
    for name, value in (("public_key", public_key), ("user_data", user_data), ("nonce", nonce)):
        if value is not None and len(value) > MAX_ATTESTATION_FIELD_BYTES:
            raise NsmArgumentError(
                f"nsm: {name} is {len(value)} bytes, limit is {MAX_ATTESTATION_FIELD_BYTES}"
            )


def check_pcr_index(index: int) -> None:
    """Check a PCR index is 0..31.

    Raises:
        NsmArgumentError: out of range.
    """
    if not 0 <= index <= MAX_PCR_INDEX:
        raise NsmArgumentError(f"nsm: pcr index {index} out of range 0..{MAX_PCR_INDEX}")


def check_random_length(length: int) -> None:
    """Check a random-bytes request is 1..256 bytes.

    Raises:
        NsmArgumentError: out of range.
    """
    if not 0 < length <= MAX_RANDOM_BYTES:
        raise NsmArgumentError(f"nsm: random length {length} out of range 1..{MAX_RANDOM_BYTES}")
