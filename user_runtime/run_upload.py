# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Putting a run's bundles into the session: check a local file, upload it, find it there.

Shared by `user_runtime.run` (the app bundle) and `user_runtime.run_data` (data bundles);
kept free of heavy imports like `run` (the RPC client comes from the caller).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from user_runtime.errors import ExternalError, InputError

if TYPE_CHECKING:
    from user_runtime.rpc.client import EnclaveClient

ENCRYPTED = "encrypted"
UPLOAD_CHUNK = 8 << 20

Progress = Callable[[int, int], None]


class UploadError(ExternalError):
    """The enclave refused the upload of a local bundle."""


def check_local_bundle(path: str) -> None:
    """Check a local bundle before it is sent: header, and length as the header declares.

    No key and no signature check (the enclave does those); this catches a file that is not
    a bundle, or a truncated one, before megabytes cross to the enclave.

    Raises:
        InputError: `path` is not a bundle, or its length is not the declared one.
        OSError: It cannot be read.
    """
    from package_format.bundle.header import read_header  # noqa: PLC0415
    from package_format.bundle.reader import check_length  # noqa: PLC0415
    from package_format.errors import PackageFormatError  # noqa: PLC0415

    with open(path, "rb") as f:
        try:
            check_length(read_header(f), os.fstat(f.fileno()).st_size)
        except PackageFormatError as exc:
            raise InputError(f"{path}: {str(exc).removeprefix('bundle: ')}") from exc


def session_bundle_path(
    client: EnclaveClient, bundle: str, progress: Progress | None = None
) -> tuple[str, bool]:
    """Return the session path of `bundle` and whether it was uploaded now.

    `bundle` names a file in the session's `encrypted/` folder (`app.nb` or
    `encrypted/app.nb`), or a local file. A local file is checked (`check_local_bundle`)
    and uploaded to `encrypted/<name>` unless the session already holds one of the same
    size and modification time; the caller removes what was uploaded when the run ends.

    Raises:
        InputError: Neither a local file nor a bundle in the session, or not a bundle.
    """
    from user_runtime.rpc.client import RemoteError  # noqa: PLC0415

    name = os.path.basename(bundle)
    session_path = f"{ENCRYPTED}/{name}"
    if os.path.isfile(bundle):
        check_local_bundle(bundle)
        info = os.stat(bundle)
        try:
            remote = client.stat(session_path)
        except RemoteError:
            remote = None
        if remote is None or (remote.size, remote.mtime_ns) != (info.st_size, info.st_mtime_ns):
            upload(client, bundle, session_path, progress)
            return session_path, True
        return session_path, False
    candidate = bundle if bundle.startswith(f"{ENCRYPTED}/") else session_path
    try:
        client.stat(candidate)
    except RemoteError as exc:
        raise InputError(
            f"{bundle}: not a local file and not a bundle in the enclave's {ENCRYPTED}/"
        ) from exc
    return candidate, False


def upload(
    client: EnclaveClient,
    local: str | os.PathLike[str],
    session_path: str,
    progress: Progress | None = None,
) -> None:
    """Copy `local` into the session at `session_path` (temporary name, then rename).

    `progress(done, total)` is called after each chunk is sent. Errors name `session_path`,
    never the temporary name.

    Raises:
        OSError: The local file cannot be read.
        UploadError: The enclave refused a write (e.g. its memory budget is exhausted).
    """
    from user_runtime.rpc.client import RemoteError  # noqa: PLC0415

    folder, _, name = session_path.rpartition("/")
    try:
        client.mkdir(folder)
    except RemoteError as exc:
        if exc.name != "EEXIST":
            raise
    partial = f"{folder}/.{name}.partial"
    client.create(partial, 0o644, truncate=True)
    info = os.stat(local)
    offset = 0
    try:
        with open(local, "rb") as src:
            # The bodies go from the page cache to the socket with sendfile: no copy in Python,
            # which leaves the CPU to the enclave's side (on one host, its receipts' hashing).
            size = os.fstat(src.fileno()).st_size
            while offset < size:
                n = min(UPLOAD_CHUNK, size - offset)
                client.write_pipelined_from(partial, offset, src.fileno(), n, key=partial)
                offset += n
                if progress is not None:
                    progress(offset, size)
        client.flush(partial)
        client.rename(partial, session_path)
        client.utimens(session_path, info.st_atime_ns, info.st_mtime_ns)
    except BaseException as exc:
        with contextlib.suppress(Exception):  # best effort; the original error matters
            client.unlink(partial)
        if isinstance(exc, RemoteError):
            reason = exc.remote_message.replace(partial, session_path)
            raise UploadError(
                f"{os.fspath(local)}: upload to {session_path} failed: {reason} ({exc.name})"
            ) from exc
        raise
