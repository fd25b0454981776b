# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime enclave start/stop/status`: the backend that runs the enclave, chosen here.

`local` runs the image on this host without a VM, `qemu` boots it in QEMU's nitro-enclave
machine, `nitro` drives `nitro-cli` on a Nitro host (`auto`: nitro when the host has it, else
local). Each backend records its `EnclaveState` (`record`); `status` and `stop` read it back
and end the processes of the backend that wrote it.
"""

from __future__ import annotations

from pathlib import Path

from user_runtime.enclave.local import cleanup_local, start_local
from user_runtime.enclave.nitro import _cleanup_nitro, _nitro_running, _start_nitro, nitro_available
from user_runtime.enclave.procs import _is_our_process
from user_runtime.enclave.record import EnclaveState, StartOptions, read_state, remove_files
from user_runtime.errors import ExternalError, InputError, UsageError


class EnclaveRunningError(ExternalError):
    """An enclave is already running for this state directory."""


class NoEnclaveError(InputError):
    """No enclave is running for this state directory."""


def is_alive(state: EnclaveState) -> bool:
    """Whether the recorded enclave still runs (pid checked against its command line)."""
    if state.mode == "nitro":
        return _nitro_running(state.enclave_id)
    marker = "nitro-enclave" if state.mode == "qemu" else "enclave"
    return state.pid is not None and _is_our_process(state.pid, marker)


def start(opts: StartOptions) -> tuple[EnclaveState, list[str]]:
    """Start an enclave from `opts.eif`; return its state and warnings for the user.

    Raises:
        EnclaveRunningError: One is already running for this state directory.
        InputError: The image is unreadable or lacks the enclave server.
        EnclaveStartError: The process did not come up.
    """
    state_dir = opts.state_dir
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    previous = read_state(state_dir)
    if previous is not None:
        if is_alive(previous):
            raise EnclaveRunningError(
                f"an enclave is already running ({previous.address}); stop it first"
            )
        cleanup(state_dir, previous)
    backend = opts.backend
    if backend == "auto":
        backend = "nitro" if nitro_available() else "local"
    if backend == "qemu":
        from user_runtime.enclave.qemu import start_qemu  # noqa: PLC0415

        return start_qemu(opts)
    if backend == "nitro":
        if not nitro_available():
            raise UsageError("--backend nitro: no /dev/nitro_enclaves or nitro-cli on this host")
        return _start_nitro(opts), []
    if backend != "local":
        raise UsageError(f"--backend {backend!r}: expected auto, local, qemu or nitro")
    return start_local(opts)


def stop(state_dir: Path) -> EnclaveState:
    """Stop the enclave and wipe its RAM directory; return the state it had.

    Raises:
        NoEnclaveError: No enclave is recorded.
    """
    state = read_state(state_dir)
    if state is None:
        raise NoEnclaveError(f"no enclave is running (state dir {state_dir.parent})")
    cleanup(state_dir, state)
    return state


def cleanup(state_dir: Path, state: EnclaveState) -> None:
    """End every process of `state`, wipe its RAM directory, remove its files."""
    if state.mode == "nitro":
        _cleanup_nitro(state)
    elif state.mode == "qemu":
        from user_runtime.enclave.qemu import cleanup_qemu  # noqa: PLC0415

        cleanup_qemu(state_dir, state)
    else:
        cleanup_local(state)
    remove_files(state_dir)
