# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The life of a sync mount: state file, daemon start, stop, stale-mount cleanup (specs/sync.md §7).

One state file per mounted folder, `$STATE/sync/<id>.json`, names the daemon's
pid, the folder, the store and the enclave address; the daemon's log sits
beside it. A mount whose daemon died (SIGKILL) answers `ENOTCONN`; the next
`sync` (or `sync --stop`) detects it and unmounts it with `fusermount3 -u`,
`fusermount -u` or `umount -l`, whichever works.

One enclave has one session filesystem, so it takes one mount: a second sync of the same
enclave (from another folder) would replay its own, different store into it and empty it under
the first. `sync` refuses it, naming the first mount (`enclave_in_use`), and the daemon holds
an exclusive lock per enclave for its life (`EnclaveLock`), so two syncs started at once
cannot both get through (specs/sync.md §7).
"""

# os.stat/abspath on purpose: a dead mount must not be resolved through pathlib.
# ruff: noqa: PTH100
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from user_runtime.errors import ExternalError, UsageError

STATE_DIR_ENV = "NB_STATE_DIR"
DEFAULT_STATE_DIR = ".nitro-bundles-local"
READY = b"ready\n"


class MountError(ExternalError):
    """A mount could not be made, found or removed."""


class FolderBusyError(UsageError):
    """The folder is already mounted (by a live sync or by something else)."""


class EnclaveAlreadySyncedError(ExternalError):
    """The enclave is already synced to another folder (one mount per enclave)."""


@dataclass(frozen=True)
class MountState:
    """What the state file of one sync mount records."""

    folder: str
    store: str
    enclave: str
    pid: int


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$NB_STATE_DIR`, else `./.nitro-bundles-local` (as `user-runtime enclave` uses)."""
    env = os.environ if env is None else env
    return Path(env.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR).absolute()


def canonical_folder(folder: Path) -> Path:
    """The folder's absolute path without touching it (a dead mount cannot be stat'ed)."""
    folder = Path(os.path.abspath(folder))
    return Path(os.path.realpath(folder.parent)) / folder.name


def _paths(folder: Path, state_dir: Path) -> tuple[Path, Path]:
    digest = hashlib.sha256(str(canonical_folder(folder)).encode()).hexdigest()[:16]
    base = state_dir / "sync"
    return base / f"{digest}.json", base / f"{digest}.log"


def state_path(folder: Path, state_dir: Path) -> Path:
    """The state file of `folder`."""
    return _paths(folder, state_dir)[0]


def log_path(folder: Path, state_dir: Path) -> Path:
    """The daemon log of `folder`."""
    return _paths(folder, state_dir)[1]


def write_state(state: MountState, state_dir: Path) -> None:
    """Record a running mount (atomically)."""
    path = state_path(Path(state.folder), state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state)) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_state(folder: Path, state_dir: Path) -> MountState | None:
    """The recorded mount of `folder`, or None."""
    try:
        raw = json.loads(state_path(folder, state_dir).read_text(encoding="utf-8"))
        return MountState(
            str(raw["folder"]), str(raw["store"]), str(raw["enclave"]), int(raw["pid"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_state(folder: Path, state_dir: Path, pid: int | None = None) -> None:
    """Forget the mount of `folder` (only if still recorded for `pid`, when given)."""
    current = read_state(folder, state_dir)
    if pid is not None and current is not None and current.pid != pid:
        return
    with contextlib.suppress(FileNotFoundError):
        state_path(folder, state_dir).unlink()


def _unescape(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal.
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def mount_type(folder: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """The filesystem type mounted on `folder` (e.g. `fuse`), or None."""
    target = str(canonical_folder(folder))
    found = None
    for line in mounts.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 3 and _unescape(fields[1]) == target:
            found = fields[2]  # the last one listed is the one on top
    return found


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return status.rpartition(")")[2].split()[:1] != ["Z"]


def is_dead_mount(folder: Path) -> bool:
    """Whether `folder` is a FUSE mount whose daemon is gone (ENOTCONN and friends)."""
    kind = mount_type(folder)
    if kind is None or not kind.startswith("fuse"):
        return False
    try:
        os.statvfs(canonical_folder(folder))  # never answered from the kernel's attr cache
    except OSError as e:
        return e.errno in {errno.ENOTCONN, errno.ECONNABORTED, errno.EIO}
    return False


def unmount(folder: Path, runner: Callable[[Sequence[str]], int] | None = None) -> str:
    """Unmount `folder` with the first tool that works; return its name.

    Raises:
        MountError: nothing could unmount it.
    """
    run = runner or _run_quietly
    target = str(canonical_folder(folder))
    tried = []
    for argv in (
        ["fusermount3", "-u", target],
        ["fusermount", "-u", target],
        ["fusermount3", "-uz", target],
        ["umount", "-l", target],
    ):
        if shutil.which(argv[0]) is None:
            continue
        tried.append(" ".join(argv[:2]))
        if run(argv) == 0 and mount_type(folder) is None:
            return argv[0]
    if mount_type(folder) is None:
        return "none"
    raise MountError(f"{target}: cannot unmount (tried {', '.join(tried) or 'nothing'})")


def _run_quietly(argv: Sequence[str]) -> int:
    return subprocess.run(argv, capture_output=True, check=False, timeout=30).returncode


def cleanup_stale(folder: Path, state_dir: Path) -> bool:
    """Unmount a mount left by a killed sync and forget it; True when one was cleaned.

    Raises:
        FolderBusyError: a live sync (or something else) is mounted there.
        MountError: the stale mount could not be removed.
    """
    state = read_state(folder, state_dir)
    kind = mount_type(folder)
    if kind is None:
        if state is not None and not pid_alive(state.pid):
            remove_state(folder, state_dir)
        return False
    if state is not None and pid_alive(state.pid) and not is_dead_mount(folder):
        raise FolderBusyError(
            f"{folder}: already synced (pid {state.pid})", field="folder", hint="stop-sync"
        )
    if not kind.startswith("fuse"):
        raise FolderBusyError(f"{folder}: something else ({kind}) is mounted there")
    if not is_dead_mount(folder) and state is None:
        raise FolderBusyError(f"{folder}: another FUSE filesystem is mounted there")
    unmount(folder)
    remove_state(folder, state_dir)
    return True


def _enclave_key(address: str) -> str:
    """One spelling per enclave: a Unix socket by its real path."""
    kind, _, rest = address.partition(":")
    if kind == "unix":
        return f"unix:{os.path.realpath(rest)}"
    return address


def _live_states(state_dir: Path) -> Iterator[MountState]:
    for path in sorted((state_dir / "sync").glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            raw = json.loads(path.read_text(encoding="utf-8"))
            state = MountState(
                str(raw["folder"]), str(raw["store"]), str(raw["enclave"]), int(raw["pid"])
            )
            if pid_alive(state.pid):
                yield state


def enclave_in_use(address: str, folder: Path, state_dir: Path) -> MountState | None:
    """The live sync of the enclave at `address` on a folder other than `folder`, if any."""
    key = _enclave_key(address)
    mine = str(canonical_folder(folder))
    for state in _live_states(state_dir):
        if state.folder != mine and _enclave_key(state.enclave) == key:
            return state
    return None


def mount_of_enclave(address: str, state_dir: Path) -> MountState | None:
    """The live sync of the enclave at `address`, if any (a `run` waits for its replay)."""
    key = _enclave_key(address)
    return next((s for s in _live_states(state_dir) if _enclave_key(s.enclave) == key), None)


def control_path(folder: Path, state_dir: Path) -> Path:
    """The daemon's control socket (specs/sync.md §6.4): beside its state file.

    A Unix socket path holds at most 107 bytes; a deeper state folder puts it in
    the temporary folder under the same name.
    """
    path = _paths(folder, state_dir)[0].with_suffix(".sock")
    if len(os.fsencode(path)) <= 100:  # sun_path holds 107 bytes
        return path
    return Path(tempfile.gettempdir()) / f"nb-sync-{path.stem}.sock"


def _already_synced(address: str, state: MountState | None) -> EnclaveAlreadySyncedError:
    where = f"on {state.folder} (pid {state.pid})" if state is not None else "by another sync"
    hint = f"user-runtime sync --stop -d {state.folder}" if state is not None else "sync --stop"
    return EnclaveAlreadySyncedError(
        f"enclave {address} is already synced {where}; one enclave takes one mount "
        f"(a second would replace its files): stop it first with `{hint}`"
    )


def check_enclave_free(address: str, folder: Path, state_dir: Path) -> None:
    """Refuse a sync of an enclave another live sync mounts (naming that mount).

    Raises:
        EnclaveAlreadySyncedError: Another folder is synced to the same enclave.
    """
    state = enclave_in_use(address, folder, state_dir)
    if state is not None:
        raise _already_synced(address, state)


class EnclaveLock:
    """An exclusive lock per enclave, held by the sync daemon while it runs."""

    def __init__(self, address: str, folder: Path, state_dir: Path) -> None:
        """Take the lock of the enclave at `address`.

        Raises:
            EnclaveAlreadySyncedError: Another sync holds it.
        """
        digest = hashlib.sha256(_enclave_key(address).encode()).hexdigest()[:16]
        path = state_dir / "sync" / f"enclave-{digest}.lock"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise _already_synced(address, enclave_in_use(address, folder, state_dir)) from None

    def release(self) -> None:
        """Let the lock go (the kernel does too when the daemon exits)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def start_daemon(argv: Sequence[str], log_file: Path, timeout: float = 60.0) -> int:
    """Start `argv` (which gets `--ready-fd N`) detached; return its pid once it is mounted.

    Raises:
        MountError: it exited or did not become ready within `timeout`; the
            message is the last line it logged.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    read_fd, write_fd = os.pipe()
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            [*argv, "--ready-fd", str(write_fd)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_fd,),
            start_new_session=True,
            close_fds=True,
        )
    os.close(write_fd)
    try:
        got = b""
        deadline = time.monotonic() + timeout
        while READY not in got:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait()
                raise MountError(f"sync did not become ready within {timeout:.0f}s")
            ready, _, _ = select.select([read_fd], [], [], left)
            if ready:
                chunk = os.read(read_fd, 64)
                if not chunk:
                    break
                got += chunk
        if READY not in got:
            proc.wait(timeout=30)
            raise MountError(_last_line(log_file) or f"sync exited with status {proc.returncode}")
    finally:
        os.close(read_fd)
    return proc.pid


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln]
        if lines:
            last = lines[-1]
            return last.split("error: ", 1)[1] if "error: " in last else last
    return ""


def stop(folder: Path, state_dir: Path, timeout: float = 20.0) -> str:
    """Stop the sync of `folder`; return what was done ("stopped", "cleaned", "not-mounted").

    Raises:
        MountError: the mount would not go away.
    """
    state = read_state(folder, state_dir)
    if state is not None and pid_alive(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(state.pid):
            time.sleep(0.05)
        if pid_alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)
        if mount_type(folder) is not None:
            unmount(folder)
        remove_state(folder, state_dir)
        return "stopped"
    if mount_type(folder) is not None:
        if not is_dead_mount(folder) and state is None:
            raise FolderBusyError(f"{folder}: not mounted by sync")
        unmount(folder)
        remove_state(folder, state_dir)
        return "cleaned"
    remove_state(folder, state_dir)
    return "not-mounted"
