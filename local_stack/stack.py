# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Bring the whole local stack up and down: moto's server, the KMS front, the NSM PKI.

specs/local-kms.md §7. State lives in one directory (default: `$NB_STATE_DIR`,
else `./.nitro-bundles-local`): `stack.json` (URLs and pids), `kms-front.json`
(the front's config), the simulated NSM PKI and the servers' logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack import pki
from local_stack.errors import ExternalError, InputError, UsageError
from local_stack.kms_front import FrontConfig
from local_stack.processes import (
    HOST,
    LOCAL_CREDENTIALS,
    ServerProcess,
    free_port,
    spawn,
    start_moto,
)

__all__ = [
    "DEFAULT_STATE_DIR",
    "ENCLAVE_CREDENTIALS",
    "ENCLAVE_PRINCIPAL",
    "LOCAL_ACCOUNT",
    "OWNER_PRINCIPAL",
    "STATE_ENV",
    "StackInfo",
    "default_principals",
    "down",
    "read_info",
    "resolve_state_dir",
    "status",
    "up",
]

STATE_ENV = "NB_STATE_DIR"
DEFAULT_STATE_DIR = ".nitro-bundles-local"
STACK_FILE = "stack.json"
FRONT_CONFIG_FILE = "kms-front.json"
PKI_DIR = "nsm-pki"
LOCAL_ACCOUNT = "123456789012"  # moto's default account id
# specs/local-kms.md §5.2: the two local identities, by SigV4 access key id.
OWNER_PRINCIPAL = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/local-owner"
ENCLAVE_PRINCIPAL = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/local-enclave-parent"
ENCLAVE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local-enclave-access-key",
    "AWS_SECRET_ACCESS_KEY": "local-enclave-secret-key",
    "AWS_DEFAULT_REGION": LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
}
_KINDS = {"moto": "moto.server", "kms": "local_stack.kms_server"}


def default_principals() -> dict[str, str]:
    """Access key id -> principal ARN: the owner's keys and the enclave host's keys."""
    return {
        LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"]: OWNER_PRINCIPAL,
        ENCLAVE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: ENCLAVE_PRINCIPAL,
    }


@dataclass(frozen=True)
class StackInfo:
    """What `stack.json` records about a running stack."""

    state_dir: Path
    moto: ServerProcess
    kms: ServerProcess
    root_pem_path: Path
    principals: dict[str, str]

    @property
    def region(self) -> str:
        """The region every local client uses."""
        return LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"]

    def to_json(self) -> dict[str, Any]:
        """The `stack.json` object."""
        return {
            "moto": {"url": self.moto.url, "pid": self.moto.pid},
            "kms": {"url": self.kms.url, "pid": self.kms.pid},
            "s3_url": self.moto.url,
            "kms_url": self.kms.url,
            "region": self.region,
            "nsm_root_pem": str(self.root_pem_path),
            "principals": self.principals,
        }

    def env(self) -> dict[str, str]:
        """Environment for boto3 clients: endpoints, region and the owner's credentials."""
        return {
            **LOCAL_CREDENTIALS,
            "AWS_ENDPOINT_URL_KMS": self.kms.url,
            "AWS_ENDPOINT_URL_S3": self.moto.url,
            "NB_STATE_DIR": str(self.state_dir),
            "NB_NSM_ROOT_PEM": str(self.root_pem_path),
            # The ARNs `owner-tools policy` / `publish --apply-policy` ask for (§5.3).
            "NB_ACCOUNT": LOCAL_ACCOUNT,
            "NB_OWNER_PRINCIPAL": OWNER_PRINCIPAL,
            "NB_ENCLAVE_PRINCIPAL": ENCLAVE_PRINCIPAL,
        }


def resolve_state_dir(state_dir: str | Path | None) -> Path:
    """The state directory: the argument, else `$NB_STATE_DIR`, else `./.nitro-bundles-local`."""
    chosen = state_dir or os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR
    return Path(chosen).absolute()


def read_info(state_dir: Path) -> StackInfo | None:
    """Read `stack.json`, or None when there is none.

    Raises:
        InputError: the file exists but is not what `up` writes.
    """
    path = state_dir / STACK_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable stack state: {exc}") from exc
    try:
        return StackInfo(
            state_dir=state_dir,
            moto=ServerProcess(int(data["moto"]["pid"]), str(data["moto"]["url"])),
            kms=ServerProcess(int(data["kms"]["pid"]), str(data["kms"]["url"])),
            root_pem_path=Path(data["nsm_root_pem"]),
            principals=dict(data["principals"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a stack state file") from exc


def is_ours(server: ServerProcess, kind: str) -> bool:
    """Whether `server.pid` is still the process we started (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return _KINDS[kind].encode() in cmdline


def status(state_dir: Path) -> tuple[StackInfo | None, dict[str, bool]]:
    """The recorded stack and, per server ("moto", "kms"), whether it is running."""
    info = read_info(state_dir)
    if info is None:
        return None, {"moto": False, "kms": False}
    return info, {"moto": is_ours(info.moto, "moto"), "kms": is_ours(info.kms, "kms")}


def up(state_dir: Path, port: int | None = None) -> tuple[StackInfo, bool]:
    """Start moto and the KMS front unless they already run; return (info, started).

    Raises:
        UsageError: a stack is recorded and only partly running (run `down` first).
        ExternalError: a server did not start.
    """
    info, alive = status(state_dir)
    if info is not None:
        if all(alive.values()):
            return info, False
        if any(alive.values()):
            raise UsageError(f"{state_dir}: stack is partly running; run local-stack down first")
    state_dir.mkdir(parents=True, exist_ok=True)
    root_pem_path = pki.ensure_pki(state_dir / PKI_DIR)
    principals = default_principals()
    moto = start_moto(log_path=str(state_dir / "moto.log"))
    try:
        config = FrontConfig(
            moto_url=moto.url, root_pem=root_pem_path.read_bytes(), principals=principals
        )
        config_path = state_dir / FRONT_CONFIG_FILE
        _write_json(config_path, config.to_json())
        kms_port = port or free_port()
        url = f"http://{HOST}:{kms_port}"
        argv = [sys.executable, "-m", "local_stack.kms_server", "--config", str(config_path)]
        argv += ["--port", str(kms_port)]
        kms = spawn(argv, url + "/", str(state_dir / "kms-front.log"))
        kms = ServerProcess(kms.pid, url)
    except BaseException:
        moto.stop()
        raise
    info = StackInfo(state_dir, moto, kms, root_pem_path, principals)
    try:
        _write_json(state_dir / STACK_FILE, info.to_json())
    except BaseException:
        kms.stop()
        moto.stop()
        raise
    return info, True


def down(state_dir: Path) -> bool:
    """Stop the recorded servers and forget them; False when nothing was recorded."""
    info = read_info(state_dir)
    if info is None:
        return False
    for kind, server in (("kms", info.kms), ("moto", info.moto)):
        if is_ours(server, kind):
            server.stop()
    with contextlib.suppress(FileNotFoundError):
        (state_dir / STACK_FILE).unlink()
    return True


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # Temp name in the target dir, fsync, rename: a crash never leaves half a file.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


def check_running(info: StackInfo) -> None:
    """Raise if either recorded server is gone.

    Raises:
        ExternalError: a server is not running.
    """
    for kind, server in (("moto", info.moto), ("kms", info.kms)):
        if not is_ours(server, kind):
            raise ExternalError(f"{kind} server (pid {server.pid}) is not running")
