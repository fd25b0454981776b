# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The signing material QEMU's patched virtio-nsm uses (specs/qemu-nsm.md §3).

On Nitro, every attestation document is signed by a short-lived leaf that AWS's chain
issues. Under QEMU, `enclave start --backend qemu` issues one P-384 leaf from the local
stack's simulated NSM intermediate (the PKI the KMS front pins, specs/local-kms.md §7.2) and
hands QEMU the leaf key, the leaf certificate and the CA bundle (root first, as AWS orders
`cabundle`). The leaf lives as long as the enclave may (a day), not 3 hours: QEMU keeps one
leaf for all its documents.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from package_format.attestation.build import build_leaf_certificate
from user_runtime.errors import InputError

# QEMU properties (-global), in the order `write_leaf` returns its files.
NSM_GLOBALS = (
    "virtio-nsm-device.signing-key",
    "virtio-nsm-device.certificate",
    "virtio-nsm-device.cabundle",
)
LEAF_LIFETIME = timedelta(days=1)
_MAX_PKI_FILE = 64 * 1024


class NsmPkiError(InputError):
    """The local stack's NSM PKI is missing or unusable."""


def write_leaf(pki_dir: Path, out_dir: Path, *, now: datetime | None = None) -> list[Path]:
    """Issue a leaf from `pki_dir`'s intermediate; write key, certificate and CA bundle.

    Returns:
        The paths of the leaf key (PEM, 0600), the leaf certificate (PEM) and the CA bundle
        (PEM: root, then intermediate), in `NSM_GLOBALS` order.

    Raises:
        NsmPkiError: the PKI files are missing or not a P-384 root and intermediate.
    """
    root = _cert(pki_dir / "root.pem")
    inter = _cert(pki_dir / "intermediate.pem")
    try:
        key = serialization.load_pem_private_key(_read(pki_dir / "intermediate.key"), None)
    except (ValueError, TypeError) as exc:
        raise NsmPkiError(f"{pki_dir / 'intermediate.key'}: not a pem private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise NsmPkiError(f"{pki_dir / 'intermediate.key'}: not an ec key")
    start = (now or datetime.now(tz=UTC)).replace(microsecond=0) - timedelta(minutes=5)
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    leaf = build_leaf_certificate(
        common_name="i-qemu0000000000000-enc0000000000000000.local.qemu",
        public_key=leaf_key.public_key(),
        issuer=inter,
        issuer_key=key,
        not_before=start,
        not_after=start + LEAF_LIFETIME,
        serial=int.from_bytes(secrets.token_bytes(16), "big") >> 1 or 1,
    )
    pem = serialization.Encoding.PEM
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = [out_dir / "leaf.key", out_dir / "leaf.pem", out_dir / "cabundle.pem"]
    blobs = [
        leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        leaf.public_bytes(pem),
        root.public_bytes(pem) + inter.public_bytes(pem),
    ]
    for path, data in zip(files, blobs, strict=True):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    return files


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_PKI_FILE + 1)
    except OSError as exc:
        raise NsmPkiError(f"{path}: cannot read ({exc.strerror})") from exc
    if len(data) > _MAX_PKI_FILE:
        raise NsmPkiError(f"{path}: too large")
    return data


def _cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path))
    except ValueError as exc:
        raise NsmPkiError(f"{path}: not a pem certificate") from exc
