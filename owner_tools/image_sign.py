# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`sign-eif` and `describe-eif` on files (specs/enclave-image.md §6, §8)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from owner_tools.errors import InputError
from package_format.eif import EifImage, describe, read_eif, sign_eif

MAX_PEM = 64 << 10


class ImageCheckError(InputError):
    """An image fails its CRC or signature check."""


class SigningKeyError(InputError):
    """The signing certificate or private key cannot be used."""


def _read_pem(path: Path, what: str) -> bytes:
    with path.open("rb") as f:
        data = f.read(MAX_PEM + 1)
    if len(data) > MAX_PEM or b"-----BEGIN" not in data:
        raise SigningKeyError(f"{path}: not a PEM {what}")
    return data


def load_signing_material(cert: Path, key: Path) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """Read the PEM certificate (kept verbatim) and the unencrypted PEM EC private key.

    Raises:
        SigningKeyError: unreadable, not PEM, encrypted or not an EC key.
    """
    cert_pem = _read_pem(cert, "certificate")
    try:
        private = serialization.load_pem_private_key(_read_pem(key, "private key"), None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{key}: not an unencrypted PEM private key") from exc
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise SigningKeyError(f"{key}: not an ec (p-384) private key")
    return cert_pem, private


def sign_file(src: Path, dest: Path, cert: Path, key: Path) -> EifImage:
    """Sign `src` into `dest` (may be the same path) atomically; return the signed image.

    Raises:
        SigningKeyError: bad certificate or key.
        PackageFormatError: `src` is not a valid image, or key and certificate mismatch.
        OSError: a file cannot be read or written.
    """
    cert_pem, private = load_signing_material(cert, key)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=".partial", dir=dest.resolve().parent
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as out:
            with src.open("rb") as inp:
                shutil.copyfileobj(inp, out, 1 << 20)
            image = sign_eif(out, cert_pem, private)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o644)
        tmp.replace(dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return image


def describe_file(path: Path, hash_algorithm: str) -> tuple[dict[str, Any], str | None]:
    """The describe-eif object and, if the CRC or signature fails, a one-line problem.

    Raises:
        PackageFormatError: not a readable image.
        OSError: the file cannot be read.
    """
    with path.open("rb") as f:
        image = read_eif(f)
    info = describe(image, hash_algorithm)
    problem = None
    if not image.crc_ok:
        problem = (
            f"{path}: crc32 mismatch (header {image.header.crc32:08x}, "
            f"computed {image.computed_crc32:08x})"
        )
    elif image.is_signed and not image.signature_ok():
        problem = f"{path}: signature does not verify"
    return info, problem
