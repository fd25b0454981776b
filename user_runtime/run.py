# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime run`'s library part: find the enclave, put the bundle in the session, split args.

Kept free of heavy imports: the RPC client is imported by the caller only when it connects.
A local bundle (`-f FILE`) is checked before it is sent (its header parses and its length is
the one the header declares), uploaded, and removed from the session when the run ends,
however it ends (specs/threat-model.md §8). Nothing here prints: the CLI passes a `RunView`
that shows the run's output and waits, and turns the `RunResult` into its last lines.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from user_runtime.enclave.state import STATE_FILE
from user_runtime.errors import InputError, UsageError
from user_runtime.run_upload import session_bundle_path

if TYPE_CHECKING:
    from user_runtime.rpc.client import EnclaveClient
    from user_runtime.run_upload import Progress

# No pathlib on this path: `run` starts in a fresh process every time (issue 5, lean client).

ADDRESS_ENV = "NB_ENCLAVE_ADDRESS"
#: Exit status of a run the enclave stopped at its time limit (as GNU `timeout`).
TIMED_OUT_STATUS = 124


class NoEnclaveRunningError(InputError):
    """No enclave is recorded in the state directory and no address was given."""


class RunView(Protocol):
    """What the person running `run` sees, given by the CLI (this module prints nothing)."""

    def output(self, stream: str, data: bytes) -> None:
        """The entrypoint wrote `data` on `stream` (`stdout` or `stderr`)."""

    def sync_pending(self, pending: int) -> None:
        """The run waits for the sync mount: `pending` files are not in the enclave yet."""

    def sync_done(self) -> None:
        """The wait for the sync mount is over (whether or not it succeeded)."""

    def upload_progress(self, label: str) -> Progress | None:
        """A `(done, total)` callback for the uploads `label` names, or None for no progress."""

    def uploads_done(self) -> None:
        """Every bundle is in the session."""

    def cancelling(self) -> None:
        """The first Ctrl-C: the enclave was asked to cancel the run."""


class RunResult(NamedTuple):  # not a dataclass: ~2 ms less at every `run`'s start
    """How a run ended: its exit status, the outputs it wrote and its receipt.

    Attributes:
        status: The entrypoint's exit status; 130 when cancelled, 124 (`TIMED_OUT_STATUS`)
            when stopped at its time limit.
        stopped: Why the enclave ended the run before the entrypoint did (`run cancelled`
            or the time limit's message), else None.
        outputs: The session paths of the files this run wrote to output/ (specs/sync.md §2).
        receipt: The run's receipt (specs/receipts.md §5.2), when the enclave sent one.
    """

    status: int
    stopped: str | None = None
    outputs: tuple[str, ...] = ()
    receipt: bytes | None = None


def split_args(text: str | None) -> list[str]:
    """Split `-a "ARGS"` like a POSIX shell (quotes group, no expansion).

    Raises:
        UsageError: Unbalanced quotes.
    """
    if not text:
        return []
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"-a: {str(exc).lower()}") from exc


def check_env(items: Sequence[str]) -> list[str]:
    """Check `--env NAME=VALUE` items (the enclave checks NAME against the manifest).

    Raises:
        UsageError: An item without `=` or with an empty name.
    """
    for item in items:
        name, eq, _ = item.partition("=")
        if not eq or not name:
            raise UsageError(f"--env: expected NAME=VALUE, got {item!r}")
    return list(items)


def enclave_address(state_dir: str | os.PathLike[str]) -> str:
    """The address of the running enclave: `$NB_ENCLAVE_ADDRESS`, else the state file's.

    Raises:
        NoEnclaveRunningError: Nothing is recorded.
    """
    if os.environ.get(ADDRESS_ENV):
        return os.environ[ADDRESS_ENV]
    path = os.path.join(state_dir, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            address = json.load(f)["address"]
    except FileNotFoundError:
        address = None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NoEnclaveRunningError(f"{path}: damaged enclave state: {exc}") from exc
    if not isinstance(address, str):
        raise NoEnclaveRunningError(
            "no enclave is running: start one with `user-runtime enclave start --eif IMAGE`"
        )
    return address


def run_entrypoint(  # noqa: PLR0917 - the command's options
    bundle: str,
    script: str,
    argv: list[str],
    state_dir: str | os.PathLike[str] | None,
    view: RunView,
    timeout: int | None = None,
    env: Sequence[str] = (),
    data: Sequence[str] = (),
    nonce: bytes | None = None,
) -> RunResult:
    """Run `script` of `bundle` in the enclave, showing its output live through `view`.

    Ctrl-C asks the enclave to cancel the run (a second Ctrl-C stops waiting); a cancelled
    run ends with status 130, one stopped at its time limit (`timeout` seconds, or the
    manifest's ceiling) 124. A bundle uploaded for this run is removed from the session when
    the run ends; so are `data` bundles (`user_runtime.run_data`), which are all checked
    before anything is uploaded.

    Raises:
        NoEnclaveRunningError: No enclave is running.
        ExternalError: The enclave is unreachable, refused the run or went away mid-run.
    """
    from user_runtime.enclave.state import state_dir_path  # noqa: PLC0415
    from user_runtime.rpc.client import EnclaveClient  # noqa: PLC0415
    from user_runtime.run_data import (  # noqa: PLC0415
        check_local_inputs,
        data_session_paths,
        remove_uploaded,
    )

    check_local_inputs(bundle, data)
    states = state_dir_path(state_dir)
    address = enclave_address(states)
    _wait_for_sync(address, states, view)
    progress = view.upload_progress(f"uploading {os.path.basename(bundle)}")
    with EnclaveClient.connect(address) as client:
        path, uploaded = session_bundle_path(client, bundle, progress)
        try:
            data_paths, fresh = data_session_paths(client, data, progress)
        except BaseException:
            remove_uploaded(client, [path] if uploaded else [])
            raise
        view.uploads_done()
        try:
            return _follow(client, path, script, argv, view, timeout, env, data_paths, nonce)
        finally:
            remove_uploaded(client, ([path] if uploaded else []) + fresh)


def _wait_for_sync(address: str, states: str, view: RunView) -> None:
    """Wait for the sync mount of this enclave to replay every closed file (sync.md §6.4)."""
    if not os.path.isdir(os.path.join(states, "sync")):
        return  # never synced here: keep the lean start
    from pathlib import Path  # noqa: PLC0415

    from user_runtime.sync import wait_for_sync  # noqa: PLC0415

    try:
        wait_for_sync(address, Path(states), view.sync_pending)
    finally:
        view.sync_done()


def _follow(  # noqa: PLR0917 - one run's parts
    client: EnclaveClient,
    path: str,
    script: str,
    argv: list[str],
    view: RunView,
    timeout: int | None,
    env: Sequence[str] = (),
    data: Sequence[str] = (),
    nonce: bytes | None = None,
) -> RunResult:
    from user_runtime.rpc.client import RemoteError  # noqa: PLC0415

    handle = client.start_run(path, script, argv, timeout=timeout, env=env, data=data, nonce=nonce)
    cancelled = False
    while True:
        try:
            for event in handle.events():
                view.output(event.stream, event.data)
            break
        except KeyboardInterrupt:
            if cancelled:
                raise
            cancelled = True
            view.cancelling()
            handle.cancel()
        except RemoteError as exc:
            if exc.name == "CANCELLED":
                return RunResult(130, stopped="run cancelled")
            if exc.name == "RUN_TIMED_OUT":
                return RunResult(TIMED_OUT_STATUS, stopped=exc.remote_message)
            raise
    assert handle.exit_status is not None
    return RunResult(handle.exit_status, outputs=tuple(handle.outputs), receipt=handle.receipt)
