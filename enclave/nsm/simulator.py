# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A simulated Nitro Secure Module with its own P-384 PKI (specs/attestation.md §11).

The PKI's files are made and read by `enclave.nsm.sim_pki`.

The PKI directory holds a root (30 years, the KMS front pins `root.pem`) and an
intermediate (10 years, pathLen 0); every attestation document gets a fresh
P-384 leaf valid for 3 hours, signed by the intermediate, exactly like AWS's
short-lived enclave leaf. Documents are built by `package_format.attestation.build`,
so the verifier that checks real documents checks these too, with another root.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclave.nsm.errors import NsmArgumentError, SimPkiError
from enclave.nsm.interface import (
    NsmDescription,
    PcrDescription,
    check_attestation_fields,
    check_pcr_index,
    check_random_length,
)
from enclave.nsm.sim_pki import (
    LEAF_LIFETIME,
    SimPki,
    create_sim_pki,
    load_or_create_sim_pki,
    load_sim_pki,
)
from package_format.attestation.build import (
    build_document,
    build_leaf_certificate,
    serial_from,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

# The PKI's names are re-exported: callers import the simulator's whole surface from here.
__all__ = [
    "DEBUG_ZERO_PCRS",
    "LEAF_LIFETIME",
    "PCR_COUNT",
    "PCR_LEN",
    "ZERO_PCR",
    "ImageMeasurements",
    "SimPki",
    "SimulatedNsm",
    "create_sim_pki",
    "image_pcrs",
    "load_or_create_sim_pki",
    "load_sim_pki",
    "pcrs_from_eif",
    "pcrs_from_measurements",
]

PCR_COUNT = 16
PCR_LEN = 48
ZERO_PCR = bytes(PCR_LEN)
DEBUG_ZERO_PCRS = (0, 1, 2, 8)


class ImageMeasurements(Protocol):
    """What an EIF measurement provides (`package_format.eif.pcr.Measurements` has it)."""

    @property
    def pcr0(self) -> bytes: ...  # noqa: D102
    @property
    def pcr1(self) -> bytes: ...  # noqa: D102
    @property
    def pcr2(self) -> bytes: ...  # noqa: D102
    @property
    def pcr8(self) -> bytes | None: ...  # noqa: D102


def image_pcrs(
    pcr0: bytes,
    pcr1: bytes,
    pcr2: bytes,
    *,
    pcr8: bytes | None = None,
    pcr3: bytes | None = None,
    pcr4: bytes | None = None,
) -> dict[int, bytes]:
    """Return the 16 PCRs an enclave started from an image reports.

    PCR0/1/2 come from the image, PCR8 from its signing certificate (zero when
    unsigned), PCR3/4 (parent role and instance) default to zero, the rest are zero.

    Raises:
        NsmArgumentError: a value is not 48 bytes.
    """
    pcrs = dict.fromkeys(range(PCR_COUNT), ZERO_PCR)
    for index, value in ((0, pcr0), (1, pcr1), (2, pcr2), (3, pcr3), (4, pcr4), (8, pcr8)):
        if value is None:
            continue
        if len(value) != PCR_LEN:
            raise NsmArgumentError(f"nsm: pcr {index} is {len(value)} bytes, need {PCR_LEN}")
        pcrs[index] = value
    return pcrs


def pcrs_from_measurements(measurements: ImageMeasurements) -> dict[int, bytes]:
    """Return the 16 PCRs of an enclave started from an EIF with these measurements.

    Raises:
        NsmArgumentError: a value is not 48 bytes.
    """
    return image_pcrs(
        measurements.pcr0, measurements.pcr1, measurements.pcr2, pcr8=measurements.pcr8
    )


def pcrs_from_eif(
    path: Path, *, pcr3: bytes | None = None, pcr4: bytes | None = None
) -> dict[int, bytes]:
    """Return the 16 PCRs an enclave started from the EIF at `path` reports.

    Like `nitro-cli run-enclave`, the image is refused when its CRC does not match
    or, when signed, its signature does not verify.

    Args:
        path: the enclave image file.
        pcr3: PCR3 (parent IAM role) to report; zero by default.
        pcr4: PCR4 (parent instance id) to report; zero by default.

    Raises:
        SimPkiError: the file cannot be read.
        PackageFormatError: the image is malformed, corrupt, or badly signed.
    """
    from package_format.eif.reader import read_eif  # noqa: PLC0415 - only the simulator needs it

    try:
        with path.open("rb") as handle:
            image = read_eif(handle)
    except OSError as exc:
        raise SimPkiError(f"{path}: cannot read enclave image ({exc.strerror})") from exc
    image.verify()
    measured = image.measurements
    return image_pcrs(
        measured.pcr0, measured.pcr1, measured.pcr2, pcr8=measured.pcr8, pcr3=pcr3, pcr4=pcr4
    )


def _utc_now() -> datetime:
    return datetime.now(tz=UTC)


class SimulatedNsm:
    """An `Nsm` that signs documents with the simulator PKI.

    Args:
        pki: the CA material (see `load_sim_pki`).
        pcrs: PCR index (0..31) to 48-byte value; use `image_pcrs` for an image.
        debug: report PCR0/1/2/8 as zeros, as a debug-mode enclave does.
        clock: returns the current time (aware); injected so tests need no sleeping.
        random: returns n random bytes; injected for deterministic tests.
        module_id: the module id; default is one shaped like AWS's.
    """

    def __init__(
        self,
        pki: SimPki,
        pcrs: Mapping[int, bytes],
        *,
        debug: bool = False,
        clock: Callable[[], datetime] = _utc_now,
        random: Callable[[int], bytes] = os.urandom,
        module_id: str | None = None,
    ) -> None:
        values = dict.fromkeys(range(PCR_COUNT), ZERO_PCR)
        for index, value in pcrs.items():
            check_pcr_index(index)
            if len(value) != PCR_LEN:
                raise NsmArgumentError(f"nsm: pcr {index} is {len(value)} bytes, need {PCR_LEN}")
            values[index] = bytes(value)
        if debug:
            for index in DEBUG_ZERO_PCRS:
                values[index] = ZERO_PCR
        self._pki = pki
        self._pcrs = MappingProxyType(dict(sorted(values.items())))
        self._clock = clock
        self._random = random
        self.debug = debug
        self.module_id = module_id or (f"i-{random(9).hex()[:17]}-enc{random(8).hex()}")

    @property
    def pcrs(self) -> Mapping[int, bytes]:
        """The PCR values every document carries."""
        return self._pcrs

    def attestation(
        self,
        public_key: bytes | None = None,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
    ) -> bytes:
        """Return a fresh document signed by a new 3-hour leaf.

        Raises:
            NsmArgumentError: a field is longer than 1024 bytes.
        """
        check_attestation_fields(public_key, user_data, nonce)
        now = self._clock()
        if now.tzinfo is None:
            raise NsmArgumentError("nsm: simulator clock returned a naive time")
        not_before = now.replace(microsecond=0)
        leaf_key = ec.generate_private_key(ec.SECP384R1())
        leaf = build_leaf_certificate(
            common_name=f"{self.module_id}.local.simulator",
            public_key=leaf_key.public_key(),
            issuer=self._pki.intermediate_cert,
            issuer_key=self._pki.intermediate_key,
            not_before=not_before,
            not_after=not_before + LEAF_LIFETIME,
            serial=serial_from(self._random(16)),
        )
        der = serialization.Encoding.DER
        return build_document(
            signing_key=leaf_key,
            module_id=self.module_id,
            timestamp_ms=int(now.timestamp() * 1000),
            pcrs=self._pcrs,
            certificate=leaf.public_bytes(der),
            cabundle=[
                self._pki.root_cert.public_bytes(der),
                self._pki.intermediate_cert.public_bytes(der),
            ],
            public_key=public_key,
            user_data=user_data,
            nonce=nonce,
        )

    def describe_pcr(self, index: int) -> PcrDescription:
        """Return PCR `index`; PCRs 0..15 are locked, as after boot.

        Raises:
            NsmArgumentError: `index` is out of range.
        """
        check_pcr_index(index)
        return PcrDescription(locked=index < PCR_COUNT, data=self._pcrs.get(index, ZERO_PCR))

    def get_random(self, length: int) -> bytes:
        """Return `length` random bytes.

        Raises:
            NsmArgumentError: `length` is out of range.
        """
        check_random_length(length)
        return self._random(length)

    def describe(self) -> NsmDescription:
        """Return a description like the device's."""
        return NsmDescription(
            version=(1, 0, 0),
            module_id=self.module_id,
            max_pcrs=32,
            locked_pcrs=tuple(range(PCR_COUNT)),
            digest="SHA384",
        )
