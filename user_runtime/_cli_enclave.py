# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime enclave start/stop/status` (specs/threat-model.md §6).

`start` prints the new enclave's status JSON; `status` prints it (exit 1 when none runs);
`stop` ends it and wipes its RAM directory. Warnings go to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from user_runtime.enclave.record import EnclaveState

STATE_DIR_HELP = "State directory (default: $NB_STATE_DIR, else ./.nitro-bundles-local)."


def register(app: typer.Typer) -> None:
    """Add the `enclave` group to `app`."""
    group = typer.Typer(no_args_is_help=True, help="Start, stop and inspect the enclave.")
    app.add_typer(group, name="enclave")
    group.command("start")(start_command)
    group.command("status")(status_command)
    group.command("stop")(stop_command)
    group.command("logs")(logs_command)


def start_command(  # noqa: PLR0917 - typer passes options positionally
    eif: Path = typer.Option(..., "--eif", help="The enclave image (EIF) to run."),
    debug_mode: bool = typer.Option(
        False, "--debug-mode", help="Debug mode: PCRs read as zeros, so KMS denies keys."
    ),
    memory: int = typer.Option(2048, "--memory", min=64, help="Enclave memory in MiB."),
    cpu_count: int = typer.Option(2, "--cpu-count", min=1, help="vCPUs (Nitro only)."),
    kms_endpoint: str | None = typer.Option(
        None, "--kms-endpoint", help="KMS URL (default: AWS_ENDPOINT_URL_KMS, local stack)."
    ),
    state_dir: Path | None = typer.Option(None, "--state-dir", help=STATE_DIR_HELP),
    backend: str = typer.Option(
        "auto",
        "--backend",
        help="local (a process on this host's Python), qemu (the image booted in QEMU's "
        "nitro-enclave machine), nitro (nitro-cli), or auto: nitro when the host has it, "
        "else local.",
    ),
) -> None:
    """Start the enclave the image carries (a local process, QEMU, or nitro-cli).

    Example: user-runtime enclave start --eif app.eif --backend qemu
    """
    from user_runtime.enclave.backend import start
    from user_runtime.enclave.record import StartOptions
    from user_runtime.enclave.state import resolve_state_dir

    opts = StartOptions(
        eif=eif,
        state_dir=resolve_state_dir(state_dir),
        debug=debug_mode,
        memory_mib=memory,
        cpu_count=cpu_count,
        kms_endpoint=kms_endpoint,
        backend=backend,
    )
    state, warnings = start(opts)
    for warning in warnings:
        print(f"user-runtime: warning: {warning}", file=sys.stderr)
    print(json.dumps(_status_json(state, running=True), indent=2))


def status_command(
    state_dir: Path | None = typer.Option(None, "--state-dir", help=STATE_DIR_HELP),
) -> int:
    """Print the enclave's status as JSON (exit 1 when none is running).

    Example: user-runtime enclave status
    """
    from user_runtime.enclave.backend import is_alive
    from user_runtime.enclave.record import read_state
    from user_runtime.enclave.state import resolve_state_dir

    state = read_state(resolve_state_dir(state_dir))
    if state is None:
        print(json.dumps({"running": False}, indent=2))
        return 1
    running = is_alive(state)
    print(json.dumps(_status_json(state, running=running), indent=2))
    return 0 if running else 1


def stop_command(
    state_dir: Path | None = typer.Option(None, "--state-dir", help=STATE_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (cli.md)."),
) -> None:
    """Stop the enclave and wipe its working directory.

    Example: user-runtime enclave stop
    """
    from user_runtime.enclave.backend import stop
    from user_runtime.enclave.state import resolve_state_dir

    state = stop(resolve_state_dir(state_dir))
    if as_json:
        print(json.dumps({"stopped": True, "address": state.address, "mode": state.mode}))
    print(f"user-runtime: stopped the enclave at {state.address}", file=sys.stderr)


def logs_command(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help=STATE_DIR_HELP),
) -> None:
    """Print the enclave's console (qemu) or server log (local), as nitro-cli console does.

    Example: user-runtime enclave logs --follow
    """
    from user_runtime.enclave.logs import follow_logs, log_paths
    from user_runtime.enclave.state import resolve_state_dir

    paths = log_paths(resolve_state_dir(state_dir))
    follow_logs(paths, sys.stdout.buffer, follow=follow)


def _status_json(state: EnclaveState, *, running: bool) -> dict[str, object]:
    address = state.address
    return {
        "running": running,
        "mode": state.mode,
        "pid": state.pid,
        "socket": address[len("unix:") :] if address.startswith("unix:") else None,
        "address": address,
        "image": state.image,
        "pcrs": state.pcrs,
        "debug": state.debug,
        "network_isolated": state.network_isolated,
        "enclave_id": state.enclave_id,
        "cid": state.cid,
        "backend": state.mode,
        "accel": state.accel,
        "console_log": state.console_log,
        "world": state.world if state.mode == "local" else "image",
        "rootfs": state.rootfs,
    }
