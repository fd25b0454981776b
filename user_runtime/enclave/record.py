# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What an enclave's state directory records: `state.json`, the start options, file names.

Every backend (`local`, `qemu`, `nitro`) writes an `EnclaveState` here when it starts, and
`backend` reads it back for `status` and `stop`; `remove_files` clears what any of them left.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from user_runtime.enclave.files import ImageContents
from user_runtime.enclave.state import STATE_FILE
from user_runtime.errors import InputError

SOCKET_NAME = "enclave.sock"
KMS_SOCKET_NAME = "kms.sock"
IO_DIR = "io"  # the image world's socket directory, bound at IO_AT
LOG_NAME = "enclave.log"


@dataclass(frozen=True)
class EnclaveState:
    """What `enclave status` reports and `run` uses (stored as state.json)."""

    mode: str
    address: str
    image: str
    pcrs: dict[str, str]
    debug: bool
    pid: int | None = None
    relay_pid: int | None = None
    ram_dir: str | None = None
    enclave_id: str | None = None
    cid: int | None = None
    network_isolated: bool = False
    private_mount: bool = False
    started: float = field(default_factory=time.time)
    helper_pids: list[int] = field(default_factory=list)
    accel: str | None = None
    console_log: str | None = None
    world: str = "host"
    rootfs: str | None = None
    rootfs_seconds: float | None = None
    rootfs_extracted: bool | None = None


@dataclass(frozen=True)
class StartOptions:
    """The flags of `enclave start`."""

    eif: Path
    state_dir: Path
    debug: bool = False
    memory_mib: int = 2048
    cpu_count: int = 2
    kms_endpoint: str | None = None
    backend: str = "auto"
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def read_state(state_dir: Path) -> EnclaveState | None:
    """The recorded state, or None.

    Raises:
        InputError: state.json exists but is damaged.
    """
    path = state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return EnclaveState(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: damaged enclave state ({exc}); remove it") from exc


def remove_files(state_dir: Path) -> None:
    """Remove `state.json` and the sockets any backend leaves in `state_dir`."""
    for name in (
        STATE_FILE,
        SOCKET_NAME,
        KMS_SOCKET_NAME,
        f"{IO_DIR}/{SOCKET_NAME}",
        f"{IO_DIR}/{KMS_SOCKET_NAME}",
    ):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()
    with contextlib.suppress(OSError):
        (state_dir / IO_DIR).rmdir()


def image_state(opts: StartOptions, image: ImageContents, mode: str, address: str) -> EnclaveState:
    """The fields every backend records for the enclave `opts` starts from `image`.

    A backend adds its own with `dataclasses.replace`.
    """
    return EnclaveState(
        mode=mode,
        address=address,
        image=str(opts.eif.absolute()),
        pcrs=_pcrs_json(image, debug=opts.debug),
        debug=opts.debug,
    )


def _pcrs_json(image: ImageContents, *, debug: bool) -> dict[str, str]:
    zero = bytes(48).hex()
    out = {f"PCR{k}": v.hex() for k, v in sorted(image.pcrs.items())}
    if debug:
        out = {k: (zero if k in {"PCR0", "PCR1", "PCR2", "PCR8"} else v) for k, v in out.items()}
    return out


def _read_stack(base: Path) -> dict[str, Any]:
    try:
        data = json.loads((base / "stack.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(state_dir: Path, state: EnclaveState) -> None:
    tmp = state_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(state), out, indent=2, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(state_dir / STATE_FILE)
