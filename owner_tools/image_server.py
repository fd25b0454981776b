# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The image's server layer: the enclave server's source, its `enclave.json` and its entry.

specs/enclave-image.md §5.3 (the server's environment and command) and §5.5 (the config).
"""

from __future__ import annotations

import importlib.util
import json
import stat
from pathlib import Path
from typing import Any

from owner_tools.errors import UsageError
from owner_tools.image_env import AppEnvironment
from owner_tools.image_inputs import BuildInputError
from owner_tools.image_rootfs import RootEntry, file_opener

SERVER_PYTHON = "opt/nitro-bundles/python"
CONFIG_PATH = "etc/nitro-bundles/enclave.json"
CONFIG_FORMAT = "nitro-bundles/enclave-config/v1"
SERVER_PACKAGES = ("enclave", "package_format", "cli_shell")
# specs/enclave-image.md §5.3: the server's environment (the rootfs provides it) and its one
# entry, `enclave serve`, on the vsock port the host connects to (5005) and with the KMS relay
# at the parent's port 8000 (vsock-proxy's convention).
SERVER_VENV = "opt/nitro-bundles/venv"
SERVER_INTERPRETER = f"/{SERVER_VENV}/bin/python3"
SERVER_VSOCK_PORT = 5005
KMS_VSOCK_TARGET = "vsock:3:8000"
DEFAULT_CMD = (
    SERVER_INTERPRETER,
    *("-m", "enclave", "serve"),
    *("--vsock", str(SERVER_VSOCK_PORT)),
    *("--config", "/" + CONFIG_PATH),
    *("--workdir", "/run/nitro-bundles"),
)
DEFAULT_ENV = (
    f"PATH=/{SERVER_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONPATH=/" + SERVER_PYTHON,
    "PYTHONDONTWRITEBYTECODE=1",
    "NB_KMS_TARGET=" + KMS_VSOCK_TARGET,
)


def enclave_config(
    owner_keys: list[bytes],
    min_versions: dict[str, str],
    kms_region: str | None,
    environments: list[AppEnvironment] | None = None,
) -> bytes:
    """Canonical `enclave.json` (sorted keys, no spaces, ASCII, no trailing newline).

    `environments` lists the rootfs's app environments (§5.5), sorted by SHA-256; None (an
    image without a rootfs, local backend only) writes `null`.

    Raises:
        UsageError: no owner key, or a key that is not 32 bytes.
    """
    if not owner_keys:
        raise UsageError("at least one --owner-key is required")
    keys: list[str] = []
    for key in owner_keys:
        if len(key) != 32:
            raise UsageError("owner keys must be 32-byte ed25519 public keys")
        if key.hex() not in keys:
            keys.append(key.hex())
    doc: dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "environments": None
        if environments is None
        else [
            {"python": e.python, "sha256": e.sha256}
            for e in sorted(environments, key=lambda e: e.sha256)
        ],
        "owner_keys": keys,
        "min_bundle_versions": dict(sorted(min_versions.items())),
        "kms_region": kms_region,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def server_layer(config: bytes) -> list[RootEntry]:
    """Our layer: the enclave server's Python source and `enclave.json` (mtime 1492533000).

    Raises:
        BuildInputError: a server package cannot be located.
    """
    layer: list[RootEntry] = []
    for package in SERVER_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise BuildInputError(f"cannot locate the {package!r} package to embed")
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root.parent).as_posix()
            layer.append(
                RootEntry(
                    f"{SERVER_PYTHON}/{rel}",
                    stat.S_IFREG | 0o644,
                    path.stat().st_size,
                    opener=file_opener(path),
                )
            )
    layer.append(RootEntry(CONFIG_PATH, stat.S_IFREG | 0o644, len(config), data=config))
    return layer
