# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime sync`: mount a folder that mirrors into the enclave (specs/sync.md §9)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

ADDRESS_ENV = "NB_ENCLAVE_ADDRESS"


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("sync")(sync)


def sync(  # noqa: PLR0917 - typer options
    folder: Path = typer.Option(..., "-d", "--dir", help="Folder to mount (created if missing)."),
    enclave: str | None = typer.Option(
        None,
        "--enclave",
        help="Enclave address, unix:/PATH or vsock:CID:PORT "
        "(default: $NB_ENCLAVE_ADDRESS, else the enclave `enclave start` recorded).",
    ),
    store: Path | None = typer.Option(
        None, "--store", help="Backing store folder (default: ../.FOLDER.nb-store)."
    ),
    state_dir: Path | None = typer.Option(
        None,
        "--state-dir",
        help="State folder (default: $NB_STATE_DIR, else ./.nitro-bundles-local).",
    ),
    stop: bool = typer.Option(False, "--stop", help="Unmount the folder and stop its sync."),
    status: bool = typer.Option(
        False, "--status", help="Files not yet in the enclave, and paths it refused."
    ),
    foreground: bool = typer.Option(
        False, "--foreground", help="Stay in the foreground until unmounted (tests, debugging)."
    ),
    ready_fd: int | None = typer.Option(None, "--ready-fd", hidden=True),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (cli.md)."),
) -> None:
    """Mount FOLDER as a view of the enclave's session filesystem.

    Example: user-runtime sync -d synced_folder   (then: cp data.csv synced_folder/dataset/)
    """
    from user_runtime.sync import mounts

    states = state_dir or mounts.default_state_dir()
    if status:
        _status(folder, states, as_json=as_json)
        return
    if stop:
        what, where = mounts.stop(folder, states), mounts.canonical_folder(folder)
        _say(as_json, f"{what}: {where}", result=what, folder=where)
        return
    from user_runtime.errors import UsageError
    from user_runtime.rpc.client import parse_address
    from user_runtime.sync.store import BackingStore, default_store_dir

    address = enclave or os.environ.get(ADDRESS_ENV) or _recorded_enclave(states)
    parse_address(address)  # a malformed address is a usage error, before anything starts
    target = _empty_folder(folder, states)
    store_dir = (store or default_store_dir(target)).resolve()
    if store_dir == target or target in store_dir.parents:
        raise UsageError(f"{store_dir}: the store cannot live inside the synced folder")
    mounts.check_enclave_free(address, target, states)
    if not foreground:
        argv = _daemon_argv(target, address, store_dir, states)
        pid = mounts.start_daemon(argv, mounts.log_path(target, states))
        text = f"synced {target} (pid {pid}, store {store_dir})"
        _say(as_json, text, result="synced", folder=target, pid=pid, store=str(store_dir))
        return
    backing = BackingStore.open_or_create(store_dir, target)
    _serve(target, backing, address, states, ready_fd)


def _empty_folder(folder: Path, states: Path) -> Path:
    """FOLDER as the mount point: a stale mount on it cleaned, created, checked empty."""
    from user_runtime.errors import UsageError
    from user_runtime.sync import mounts

    target = mounts.canonical_folder(folder)
    if mounts.cleanup_stale(target, states):
        print(f"user-runtime: cleaned a stale mount on {target}", file=sys.stderr)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target}: not a folder")
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise UsageError(
            f"{target}: not empty; sync mounts an empty folder (its files live in the store)"
        )
    return target


def _daemon_argv(target: Path, address: str, store_dir: Path, states: Path) -> list[str]:
    """The command line of the sync daemon: this command, in the foreground."""
    return [
        sys.executable,
        "-m",
        "user_runtime",
        "sync",
        "-d",
        str(target),
        "--enclave",
        address,
        "--store",
        str(store_dir),
        "--state-dir",
        str(states),
        "--foreground",
    ]


def _say(as_json: bool, text: str, **fields: object) -> None:
    """Print `text`, or with `--json` the fields as one object (cli.md §1.2)."""
    if as_json:
        import json

        print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}))
    else:
        print(text)


def _status(folder: Path, states: Path, *, as_json: bool = False) -> None:
    """Print the replay queue of FOLDER's daemon; exit 1 when the enclave refused files."""
    from user_runtime.errors import UsageError
    from user_runtime.sync import control as sync_control
    from user_runtime.sync import mounts

    target = mounts.canonical_folder(folder)
    state = mounts.read_state(target, states)
    if state is None or not mounts.pid_alive(state.pid):
        raise UsageError(f"{target}: not synced")
    answer = sync_control.ask(mounts.control_path(target, states), "status")
    failed = answer.get("failed") or {}
    pending = answer.get("pending", 0)
    hot = answer.get("hot_path") or {"compiled": False}
    if as_json:  # the object on stdout either way; exit 1 with one stderr line when refused
        failed_sorted = dict(sorted(failed.items()))
        _say(True, "", folder=target, pending=pending, failed=failed_sorted, hot_path=hot)
    else:
        print(f"pending: {pending}")
        for path, name in sorted(failed.items()):
            print(f"failed: {path} ({name})")
        if hot.get("compiled"):
            print(f"hot path: compiled ({hot.get('getattr')} getattr, {hot.get('writes')} writes)")
        else:
            print("hot path: Python")
    if failed:
        message = (
            f"the enclave refused {len(failed)} file(s): {sync_control.describe_failed(failed)}"
        )
        if as_json:
            print(f"user-runtime: {message}", file=sys.stderr)
            raise typer.Exit(1)
        raise sync_control.SyncNotInStepError(message)


def _recorded_enclave(states: Path) -> str:
    """The address `user-runtime enclave start` recorded in `<state>/enclave/state.json`."""
    import json

    from user_runtime.errors import UsageError

    path = states / "enclave" / "state.json"
    try:
        address = json.loads(path.read_text(encoding="utf-8")).get("address")
    except (OSError, ValueError, AttributeError):
        address = None
    if not isinstance(address, str):
        raise UsageError(
            "no enclave is running: start one with `user-runtime enclave start --eif IMAGE`"
            " or pass --enclave ADDRESS"
        )
    return address


def _serve(target: Path, backing: object, address: str, states: Path, ready_fd: int | None) -> None:
    from user_runtime.errors import ExternalError
    from user_runtime.rpc.client import EnclaveClient
    from user_runtime.sync import fuse as sync_fuse
    from user_runtime.sync import mounts
    from user_runtime.sync import operations as sync
    from user_runtime.sync.link import EnclaveLink
    from user_runtime.sync.store import BackingStore

    assert isinstance(backing, BackingStore)
    # The replay queue's thread decodes the enclave's answers while FUSE callbacks wait
    # for the GIL: a 0.5 ms switch interval (5 ms by default) hands it over sooner
    # (small files: 25-35% faster in alternating runs, specs/sync.md §12).
    sys.setswitchinterval(0.0005)
    logging.basicConfig(level=logging.WARNING, format="user-runtime sync: %(message)s")
    lock = mounts.EnclaveLock(address, target, states)  # held until this process ends
    link = EnclaveLink(lambda: EnclaveClient.connect(address), backing, sync.classify)
    for path, (size, mtime_ns) in backing.take_journal().items():
        link.synced.mark(path, size, mtime_ns)
    try:
        link.start(give_up_after=5.0)
    except OSError as e:
        raise ExternalError(f"{address}: {e.strerror or e}") from e
    link.watch()

    def ready() -> None:
        mounts.write_state(
            mounts.MountState(str(target), str(backing.root), address, os.getpid()), states
        )
        if ready_fd is not None:
            os.write(ready_fd, mounts.READY)
            os.close(ready_fd)
        else:
            print(f"synced {target} (store {backing.root}); Ctrl-C unmounts", file=sys.stderr)

    try:
        sync_fuse.serve(
            str(target), backing, link, ready, control=mounts.control_path(target, states)
        )
    finally:
        mounts.remove_state(target, states, os.getpid())
        lock.release()
