# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`enclave start --backend nitro`: a real enclave on a Nitro host, driven by `nitro-cli`."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from user_runtime.enclave.files import read_image
from user_runtime.enclave.procs import EnclaveStartError, _last_text_line
from user_runtime.enclave.record import EnclaveState, StartOptions, _write_state, image_state

VSOCK_PORT = 5005


def nitro_available() -> bool:
    """Whether this host can run real enclaves (/dev/nitro_enclaves and nitro-cli)."""
    return Path("/dev/nitro_enclaves").exists() and shutil.which("nitro-cli") is not None


def _start_nitro(opts: StartOptions) -> EnclaveState:
    image = read_image(opts.eif)
    argv = ["nitro-cli", "run-enclave", "--eif-path", str(opts.eif)]
    argv += ["--memory", str(opts.memory_mib), "--cpu-count", str(opts.cpu_count)]
    if opts.debug:
        argv.append("--debug-mode")
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise EnclaveStartError(f"nitro-cli run-enclave failed: {_last_text_line(proc.stderr)}")
    try:
        info = json.loads(proc.stdout)
        enclave_id, cid = str(info["EnclaveID"]), int(info["EnclaveCID"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EnclaveStartError("nitro-cli run-enclave printed no enclave id and cid") from exc
    state = replace(
        image_state(opts, image, "nitro", f"vsock:{cid}:{VSOCK_PORT}"),
        enclave_id=enclave_id,
        cid=cid,
        network_isolated=True,
    )
    _write_state(opts.state_dir, state)
    return state


def _cleanup_nitro(state: EnclaveState) -> None:
    if state.enclave_id and _nitro_running(state.enclave_id):
        subprocess.run(
            ["nitro-cli", "terminate-enclave", "--enclave-id", state.enclave_id],
            capture_output=True,
            check=False,
        )


def _nitro_running(enclave_id: str | None) -> bool:
    if not enclave_id or shutil.which("nitro-cli") is None:
        return False
    proc = subprocess.run(
        ["nitro-cli", "describe-enclaves"], capture_output=True, text=True, check=False
    )
    try:
        return any(e.get("EnclaveID") == enclave_id for e in json.loads(proc.stdout or "[]"))
    except (ValueError, AttributeError):
        return False
