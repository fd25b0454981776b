# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Owner signing keys on disk: generate, load (formats in specs/bundle-format.md §10)."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from nacl.signing import SigningKey

from owner_tools.errors import InputError
from package_format.bundle.errors import KeyFileError
from package_format.bundle.signing import (
    MAX_KEY_FILE_SIZE,
    PUBLIC_KEY_LINE,
    dump_private_key,
    dump_public_key,
    load_private_key,
    load_public_key,
)


class KeyExistsError(InputError):
    """keygen refuses to overwrite an existing key file."""


class KeyFileUnreadableError(InputError):
    """A key file is missing, unreadable, too open or malformed."""


def keygen(prefix: Path) -> tuple[Path, Path]:
    """Write PREFIX.key (mode 0600) and PREFIX.pub; return both paths.

    Raises:
        KeyExistsError: Either file already exists (nothing is written).
        OSError: The directory is not writable.
    """
    private_path = prefix.with_name(prefix.name + ".key")
    public_path = prefix.with_name(prefix.name + ".pub")
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise KeyExistsError(f"{path}: already exists, refusing to overwrite")
    seed = bytes(SigningKey.generate())
    public = bytes(SigningKey(seed).verify_key)
    _write_new(private_path, dump_private_key(seed), 0o600)
    try:
        _write_new(public_path, dump_public_key(public), 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path


def _write_new(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # umask must not widen or narrow what we promise
        os.write(fd, text.encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)


def _read_small(path: Path) -> tuple[str, os.stat_result]:
    try:
        with path.open("rb") as f:
            info = os.fstat(f.fileno())
            data = f.read(MAX_KEY_FILE_SIZE + 1)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise KeyFileUnreadableError(f"{path}: {reason}") from exc
    try:
        return data.decode("ascii"), info
    except UnicodeDecodeError as exc:
        raise KeyFileUnreadableError(f"{path}: not a key file") from exc


def load_signing_key(path: Path) -> bytes:
    """Read a private key file and return the 32-byte seed.

    Raises:
        KeyFileUnreadableError: Missing, readable by group/others, or malformed.
    """
    text, info = _read_small(path)
    # What the file is comes first: a public key given by mistake must not be told to chmod.
    if text.startswith(PUBLIC_KEY_LINE):
        raise KeyFileUnreadableError(
            f"{path}: a public key; signing needs the private key "
            f"({path.with_suffix('.key').name}, written by keygen beside it)"
        )
    try:
        seed = load_private_key(text, str(path))
    except KeyFileError as exc:
        raise KeyFileUnreadableError(str(exc)) from exc
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise KeyFileUnreadableError(
            f"{path}: private key is accessible by other users (chmod 600 it)"
        )
    return seed


def load_owner_key(path: Path) -> bytes:
    """Read a public key file and return the 32-byte Ed25519 key.

    Raises:
        KeyFileUnreadableError: Missing or malformed.
    """
    text, _ = _read_small(path)
    try:
        return load_public_key(text, str(path))
    except KeyFileError as exc:
        raise KeyFileUnreadableError(str(exc)) from exc
