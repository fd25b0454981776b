# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`run --data BUNDLE`: data bundles joining a run (specs/cli.md, threat-model.md §5.7).

Every local file is checked before anything is uploaded (a bundle, its declared length, its
kind, given once), so bad input is one line and leaves the session as it was; the enclave
checks signatures and both sides' access rules itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from user_runtime.errors import InputError

if TYPE_CHECKING:
    from user_runtime.rpc.client import EnclaveClient
    from user_runtime.run_upload import Progress


def _kind(path: str) -> str:
    """The signed kind of the local bundle `path` (`check_local_bundle` passed)."""
    from package_format.bundle.header import read_header  # noqa: PLC0415
    from package_format.errors import PackageFormatError  # noqa: PLC0415

    with Path(path).open("rb") as f:
        try:
            return read_header(f).header.manifest.kind
        except PackageFormatError as exc:
            raise InputError(f"{path}: {str(exc).removeprefix('bundle: ')}") from exc


def check_local_inputs(bundle: str, data: Sequence[str]) -> None:
    """Check the local files among `-f` and `--data` before any upload.

    Raises:
        InputError: A file is not a bundle, is truncated, of the wrong kind, or given twice.
        OSError: A file cannot be read.
    """
    from user_runtime.run_upload import check_local_bundle  # noqa: PLC0415

    seen: dict[str, str] = {}
    for role, item in [("-f", bundle), *(("--data", d) for d in data)]:
        local = Path(item)
        key = str(local.resolve()) if local.is_file() else local.name
        if key in seen:
            raise InputError(f"{item}: given twice in one run (duplicate data bundle)")
        seen[key] = role
        if not local.is_file():
            continue
        check_local_bundle(item)
        kind = _kind(item)
        if role == "-f" and kind != "app":
            raise InputError(f"{item}: a {kind} bundle, not an app (give it with --data)")
        if role == "--data" and kind != "data":
            raise InputError(f"{item}: an {kind} bundle, not data (give the app with -f)")


def data_session_paths(
    client: EnclaveClient, data: Sequence[str], progress: Progress | None = None
) -> tuple[list[str], list[str]]:
    """Session paths of the `--data` bundles, and those uploaded now (to remove afterwards).

    Raises:
        InputError: A name is neither a local file nor a bundle in the session.
        UploadError: An upload was refused (what was uploaded is removed again).
    """
    from user_runtime.run_upload import session_bundle_path  # noqa: PLC0415

    paths: list[str] = []
    uploaded: list[str] = []
    try:
        for item in data:
            path, fresh = session_bundle_path(client, item, progress)
            paths.append(path)
            if fresh:
                uploaded.append(path)
    except BaseException:
        remove_uploaded(client, uploaded)
        raise
    return paths, uploaded


def remove_uploaded(client: EnclaveClient, paths: Sequence[str]) -> None:
    """Remove bundles uploaded for one run (best effort: a lost enclave took them)."""
    for path in paths:
        with contextlib.suppress(Exception):
            client.unlink(path)
