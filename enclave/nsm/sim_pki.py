# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The simulator's own P-384 PKI: a root, an intermediate, files on disk (attestation.md §11).

The root (30 years) is what the KMS front pins (`root.pem`); the intermediate (10 years,
pathLen 0) signs each document's fresh leaf (`LEAF_LIFETIME`, `enclave.nsm.simulator`).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclave.nsm.errors import SimPkiError
from package_format.attestation.build import (
    build_ca_certificate,
    serial_from,
)

ROOT_KEY_FILE = "root.key"
ROOT_CERT_FILE = "root.pem"
INTERMEDIATE_KEY_FILE = "intermediate.key"
INTERMEDIATE_CERT_FILE = "intermediate.pem"
ROOT_LIFETIME = timedelta(days=365 * 30)
INTERMEDIATE_LIFETIME = timedelta(days=365 * 10)
LEAF_LIFETIME = timedelta(hours=3)
_MAX_PKI_FILE = 64 * 1024


@dataclass(frozen=True)
class SimPki:
    """The simulator's CA material."""

    root_cert: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate_cert: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    @property
    def root_pem(self) -> bytes:
        """The root certificate, PEM (what a verifier pins)."""
        return self.root_cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    # Temp name in the same directory, fsync, rename: never a half-written key.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_sim_pki(directory: Path, *, now: datetime | None = None) -> SimPki:
    """Create a fresh simulator PKI in `directory` (root and intermediate).

    Writes `root.pem`, `root.key`, `intermediate.pem`, `intermediate.key`; keys
    have mode 0600 and the directory is created with mode 0700.

    Args:
        directory: where to write; existing PKI files are refused, not overwritten.
        now: start of validity (default: the current time).

    Returns:
        The material written.

    Raises:
        SimPkiError: the directory already holds a PKI or cannot be written.
    """
    start = (now or datetime.now(tz=UTC)).replace(microsecond=0) - timedelta(minutes=5)
    names = (ROOT_KEY_FILE, ROOT_CERT_FILE, INTERMEDIATE_KEY_FILE, INTERMEDIATE_CERT_FILE)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SimPkiError(f"{directory}: cannot create nsm pki directory ({exc.strerror})") from exc
    if any((directory / name).exists() for name in names):
        raise SimPkiError(f"{directory}: already holds an nsm pki")
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = build_ca_certificate(
        common_name="nitro-bundles simulated nsm root",
        public_key=root_key.public_key(),
        issuer=None,
        issuer_key=root_key,
        not_before=start,
        not_after=start + ROOT_LIFETIME,
        serial=serial_from(secrets.token_bytes(16)),
        path_length=None,
    )
    inter_key = ec.generate_private_key(ec.SECP384R1())
    inter = build_ca_certificate(
        common_name="nitro-bundles simulated nsm intermediate",
        public_key=inter_key.public_key(),
        issuer=root,
        issuer_key=root_key,
        not_before=start,
        not_after=start + INTERMEDIATE_LIFETIME,
        serial=serial_from(secrets.token_bytes(16)),
        path_length=0,
    )
    pki = SimPki(root, root_key, inter, inter_key)
    try:
        _write_private(directory / ROOT_KEY_FILE, _key_pem(root_key), 0o600)
        _write_private(directory / INTERMEDIATE_KEY_FILE, _key_pem(inter_key), 0o600)
        _write_private(
            directory / INTERMEDIATE_CERT_FILE,
            inter.public_bytes(serialization.Encoding.PEM),
            0o644,
        )
        # root.pem last: its presence means the PKI is complete.
        _write_private(directory / ROOT_CERT_FILE, pki.root_pem, 0o644)
    except OSError as exc:
        raise SimPkiError(f"{directory}: cannot write nsm pki ({exc.strerror})") from exc
    return pki


create_pki = create_sim_pki  # the name local_stack.pki calls


def _read(directory: Path, name: str) -> bytes:
    path = directory / name
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_PKI_FILE + 1)
    except OSError as exc:
        raise SimPkiError(f"{path}: cannot read ({exc.strerror})") from exc
    if len(data) > _MAX_PKI_FILE:
        raise SimPkiError(f"{path}: too large")
    return data


def _load_key(directory: Path, name: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(directory, name), password=None)
    except (ValueError, TypeError) as exc:
        raise SimPkiError(f"{directory / name}: not a pem private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP384R1):
        raise SimPkiError(f"{directory / name}: not a p-384 key")
    return key


def _load_cert(directory: Path, name: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(directory, name))
    except ValueError as exc:
        raise SimPkiError(f"{directory / name}: not a pem certificate") from exc


def load_sim_pki(directory: Path) -> SimPki:
    """Load the PKI `create_sim_pki` wrote and check that its parts belong together.

    Args:
        directory: the PKI directory.

    Returns:
        The material.

    Raises:
        SimPkiError: a file is missing or unreadable, or keys and certificates do not match.
    """
    pki = SimPki(
        root_cert=_load_cert(directory, ROOT_CERT_FILE),
        root_key=_load_key(directory, ROOT_KEY_FILE),
        intermediate_cert=_load_cert(directory, INTERMEDIATE_CERT_FILE),
        intermediate_key=_load_key(directory, INTERMEDIATE_KEY_FILE),
    )
    if pki.root_cert.public_key() != pki.root_key.public_key():
        raise SimPkiError(f"{directory}: root key does not match root.pem")
    if pki.intermediate_cert.public_key() != pki.intermediate_key.public_key():
        raise SimPkiError(f"{directory}: intermediate key does not match intermediate.pem")
    try:
        pki.intermediate_cert.verify_directly_issued_by(pki.root_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise SimPkiError(f"{directory}: intermediate is not issued by the root") from exc
    return pki


def load_or_create_sim_pki(directory: Path) -> SimPki:
    """Load the PKI in `directory`, creating it first when `root.pem` is absent.

    Raises:
        SimPkiError: the PKI cannot be loaded or created.
    """
    if (directory / ROOT_CERT_FILE).is_file():
        return load_sim_pki(directory)
    return create_sim_pki(directory)
