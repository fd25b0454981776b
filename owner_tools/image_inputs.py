# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`build-eif`'s inputs: nitro-cli blobs, build time, custom metadata (enclave-image.md §10)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from owner_tools.errors import InputError, UsageError

DEFAULT_BLOBS = Path("/usr/share/nitro_enclaves/blobs")
KERNEL_NAMES = {"x86_64": "bzImage", "aarch64": "Image"}
MAX_CUSTOM_METADATA = 4096


class BlobMissingError(InputError):
    """A kernel, cmdline, init, nsm.ko or kernel config blob is missing."""


class BuildInputError(InputError):
    """A build input is invalid (metadata file, build time, a file changed while read)."""


@dataclass(frozen=True)
class Blobs:
    """Paths of the nitro-cli blobs an image is built from."""

    kernel: Path
    cmdline: Path
    init: Path | None
    nsm_ko: Path | None
    kernel_config: Path | None


def find_blobs(
    blobs_dir: Path,
    arch: str,
    *,
    kernel: Path | None = None,
    cmdline: Path | None = None,
    init: Path | None = None,
    nsm_ko: Path | None = None,
    kernel_config: Path | None = None,
    need_bootstrap: bool = True,
) -> Blobs:
    """Resolve each blob: a single flag wins over `<blobs_dir>/<standard name>`.

    Raises:
        UsageError: unknown architecture.
        BlobMissingError: a needed blob is not a readable file.
    """
    if arch not in KERNEL_NAMES:
        raise UsageError(f"unknown architecture {arch!r} (x86_64 or aarch64)")
    kname = KERNEL_NAMES[arch]

    def pick(flag: Path | None, name: str, *, needed: bool) -> Path | None:
        path = flag if flag is not None else blobs_dir / name
        if not path.is_file():
            if not needed and flag is None:
                return None
            raise BlobMissingError(f"{path}: blob missing (set --blobs or --{_flag(name)})")
        return path

    k = pick(kernel, kname, needed=True)
    c = pick(cmdline, "cmdline", needed=True)
    assert k is not None
    assert c is not None
    return Blobs(
        kernel=k,
        cmdline=c,
        init=pick(init, "init", needed=need_bootstrap),
        nsm_ko=pick(nsm_ko, "nsm.ko", needed=need_bootstrap),
        kernel_config=pick(kernel_config, kname + ".config", needed=False),
    )


def _flag(name: str) -> str:
    return {"bzImage": "kernel", "Image": "kernel", "nsm.ko": "nsm-ko"}.get(name, name)


def parse_build_time(text: str) -> tuple[int, str]:
    """Parse `--build-time` (RFC 3339 or Unix seconds); return (epoch, RFC 3339 string).

    Raises:
        BuildInputError: neither form.
    """
    bad = f"--build-time {text!r}: not RFC 3339 with an offset or Unix seconds"
    try:
        if text.lstrip("-").isdigit():
            when = dt.datetime.fromtimestamp(int(text), dt.UTC)
        else:
            when = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError) as exc:
        raise BuildInputError(bad) from exc
    if when.tzinfo is None:
        raise BuildInputError(bad)
    return int(when.timestamp()), when.isoformat()


def load_custom_metadata(path: Path) -> Any:
    """Read `--metadata FILE`: a JSON document of at most 4096 bytes (as nitro-cli).

    Raises:
        BuildInputError: too large or not JSON.
    """
    data = path.read_bytes()
    if len(data) > MAX_CUSTOM_METADATA:
        raise BuildInputError(f"{path}: metadata over {MAX_CUSTOM_METADATA} bytes")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise BuildInputError(f"{path}: not valid json") from exc
