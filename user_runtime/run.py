# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime run`'s library part: find the enclave, put the bundle in the session, split args.

Kept free of heavy imports: the RPC client is imported by the caller only when it connects.
A local bundle (`-f FILE`) is checked before it is sent (its header parses and its length is
the one the header declares), uploaded with progress on a terminal, and removed from the
session when the run ends, however it ends (specs/threat-model.md §8).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from user_runtime.enclave.state import STATE_FILE
from user_runtime.errors import InputError, UsageError
from user_runtime.run_upload import session_bundle_path

if TYPE_CHECKING:
    from user_runtime.rpc.client import EnclaveClient

# No pathlib on this path: `run` starts in a fresh process every time (issue 5, lean client).

ADDRESS_ENV = "NB_ENCLAVE_ADDRESS"
#: Exit status of a run the enclave stopped at its time limit (as GNU `timeout`).
TIMED_OUT_STATUS = 124


class NoEnclaveRunningError(InputError):
    """No enclave is recorded in the state directory and no address was given."""


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
    out: IO[bytes],
    timeout: int | None = None,
    env: Sequence[str] = (),
    data: Sequence[str] = (),
    nonce: bytes | None = None,
) -> int:
    """Run `script` of `bundle` in the enclave, copying its output live; return its status.

    stdout goes to `out`, stderr to this process's stderr. Ctrl-C asks the enclave to cancel
    the run (a second Ctrl-C stops waiting); a cancelled run returns 130, one stopped at its
    time limit (`timeout` seconds, or the manifest's ceiling) 124. A bundle uploaded for
    this run is removed from the session when the run ends; so are `data` bundles
    (`user_runtime.run_data`), which are all checked before anything is uploaded.

    Raises:
        NoEnclaveRunningError: No enclave is running.
        ExternalError: The enclave is unreachable, refused the run or went away mid-run.
    """
    import sys  # noqa: PLC0415

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
    _wait_for_sync(address, states)
    progress = None
    if sys.stderr.isatty():  # rich only for a person watching: `run` starts lean otherwise
        from cli_shell.progress import TransferLine  # noqa: PLC0415

        progress = TransferLine(f"uploading {os.path.basename(bundle)}")
    with EnclaveClient.connect(address) as client:
        path, uploaded = session_bundle_path(client, bundle, progress)
        try:
            data_paths, fresh = data_session_paths(client, data, progress)
        except BaseException:
            remove_uploaded(client, [path] if uploaded else [])
            raise
        if progress is not None:
            progress.close()
        try:
            return _follow(client, path, script, argv, out, timeout, env, data_paths, nonce)
        finally:
            remove_uploaded(client, ([path] if uploaded else []) + fresh)


def _wait_for_sync(address: str, states: str) -> None:
    """Wait for the sync mount of this enclave to replay every closed file (sync.md §6.4).

    A line on stderr says so when it takes more than a second.
    """
    if not os.path.isdir(os.path.join(states, "sync")):
        return  # never synced here: keep the lean start
    import sys  # noqa: PLC0415
    import time  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from user_runtime.sync import wait_for_sync  # noqa: PLC0415

    start = time.monotonic()
    shown = False

    def progress(pending: int) -> None:
        nonlocal shown
        if time.monotonic() - start >= 1.0:
            sys.stderr.write(f"\ruser-runtime: waiting for sync: {pending} file(s) to the enclave ")
            sys.stderr.flush()
            shown = True

    try:
        wait_for_sync(address, Path(states), progress)
    finally:
        if shown:
            sys.stderr.write("\n")


def _follow(  # noqa: PLR0917 - one run's parts
    client: EnclaveClient,
    path: str,
    script: str,
    argv: list[str],
    out: IO[bytes],
    timeout: int | None,
    env: Sequence[str] = (),
    data: Sequence[str] = (),
    nonce: bytes | None = None,
) -> int:
    import sys  # noqa: PLC0415

    from user_runtime.rpc.client import RemoteError  # noqa: PLC0415

    err = sys.stderr.buffer
    handle = client.start_run(path, script, argv, timeout=timeout, env=env, data=data, nonce=nonce)
    cancelled = False
    while True:
        try:
            for event in handle.events():
                stream = out if event.stream == "stdout" else err
                stream.write(event.data)
                stream.flush()
            break
        except KeyboardInterrupt:
            if cancelled:
                raise
            cancelled = True
            print("user-runtime: cancelling the run in the enclave", file=sys.stderr)
            handle.cancel()
        except RemoteError as exc:
            if exc.name == "CANCELLED":
                print("user-runtime: error: run cancelled", file=sys.stderr)
                return 130
            if exc.name == "RUN_TIMED_OUT":
                print(f"user-runtime: error: {exc.remote_message}", file=sys.stderr)
                return TIMED_OUT_STATUS
            raise
    assert handle.exit_status is not None
    if handle.outputs:
        # specs/sync.md §2: output/ holds this run's files only; say which.
        print(f"user-runtime: output: {' '.join(handle.outputs)}", file=sys.stderr)
    if handle.receipt is not None:  # specs/receipts.md §5.2
        from user_runtime.receipt import receipt_line  # noqa: PLC0415

        print(receipt_line(handle.receipt, nonce), file=sys.stderr)
    return handle.exit_status
