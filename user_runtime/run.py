# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime run`'s library part: find the enclave, put the bundle in the session, split args.

Kept free of heavy imports: the RPC client is imported by the caller only when it connects.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from typing import IO, TYPE_CHECKING

from user_runtime.enclave_state import STATE_FILE
from user_runtime.errors import InputError, UsageError

if TYPE_CHECKING:
    from user_runtime.rpc_client import EnclaveClient

# No pathlib on this path: `run` starts in a fresh process every time (issue 5, lean client).

ENCRYPTED = "encrypted"
UPLOAD_CHUNK = 8 << 20
ADDRESS_ENV = "NB_ENCLAVE_ADDRESS"


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


def session_bundle_path(client: EnclaveClient, bundle: str) -> str:
    """Return the session path of `bundle`, uploading a local file first when needed.

    `bundle` names a file in the session's `encrypted/` folder (`app.nb` or
    `encrypted/app.nb`), or a local file. A local file is uploaded to `encrypted/<name>`
    unless the session already holds one of the same size and modification time.

    Raises:
        InputError: Neither a local file nor a bundle in the session.
    """
    from user_runtime.rpc_client import RemoteError  # noqa: PLC0415

    name = os.path.basename(bundle)
    session_path = f"{ENCRYPTED}/{name}"
    if os.path.isfile(bundle):
        info = os.stat(bundle)
        try:
            remote = client.stat(session_path)
        except RemoteError:
            remote = None
        if remote is None or (remote.size, remote.mtime_ns) != (info.st_size, info.st_mtime_ns):
            upload(client, bundle, session_path)
        return session_path
    candidate = bundle if bundle.startswith(f"{ENCRYPTED}/") else session_path
    try:
        client.stat(candidate)
    except RemoteError as exc:
        raise InputError(
            f"{bundle}: not a local file and not a bundle in the enclave's {ENCRYPTED}/"
        ) from exc
    return candidate


def upload(client: EnclaveClient, local: str | os.PathLike[str], session_path: str) -> None:
    """Copy `local` into the session at `session_path` (temporary name, then rename).

    Raises:
        OSError: The local file cannot be read.
        RemoteError: The enclave refused a write (e.g. its memory budget is exhausted).
    """
    from user_runtime.rpc_client import RemoteError  # noqa: PLC0415

    folder, _, name = session_path.rpartition("/")
    try:
        client.mkdir(folder)
    except RemoteError as exc:
        if exc.name != "EEXIST":
            raise
    partial = f"{folder}/.{name}.partial"
    client.create(partial, 0o644, truncate=True)
    info = os.stat(local)
    offset = 0
    try:
        with open(local, "rb") as src:
            # Two buffers, each with its own flush key: one is read into while the other's
            # writes are in flight; a buffer is reused only after its writes are answered.
            buffers = [bytearray(UPLOAD_CHUNK), bytearray(UPLOAD_CHUNK)]
            keys = [f"{partial}#0", f"{partial}#1"]
            turn = 0
            while True:
                client.flush(keys[turn])
                buf = buffers[turn]
                n = src.readinto(buf)
                if not n:
                    break
                client.write_pipelined(partial, offset, memoryview(buf)[:n], key=keys[turn])
                offset += n
                turn ^= 1
        for key in keys:
            client.flush(key)
        client.rename(partial, session_path)
        client.utimens(session_path, info.st_atime_ns, info.st_mtime_ns)
    except BaseException:
        with contextlib.suppress(Exception):  # best effort; the original error matters
            client.unlink(partial)
        raise


def run_entrypoint(
    bundle: str,
    script: str,
    argv: list[str],
    state_dir: str | os.PathLike[str] | None,
    out: IO[bytes],
) -> int:
    """Run `script` of `bundle` in the enclave, copying its output live; return its status.

    stdout goes to `out`, stderr to this process's stderr. Ctrl-C asks the enclave to cancel
    the run (a second Ctrl-C stops waiting); a cancelled run returns 130.

    Raises:
        NoEnclaveRunningError: No enclave is running.
        ExternalError: The enclave is unreachable, refused the run or went away mid-run.
    """
    import sys  # noqa: PLC0415

    from user_runtime.enclave_state import state_dir_path  # noqa: PLC0415
    from user_runtime.rpc_client import EnclaveClient, RemoteError  # noqa: PLC0415

    address = enclave_address(state_dir_path(state_dir))
    err = sys.stderr.buffer
    with EnclaveClient.connect(address) as client:
        path = session_bundle_path(client, bundle)
        handle = client.start_run(path, script, argv)
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
                raise
        assert handle.exit_status is not None
        return handle.exit_status
