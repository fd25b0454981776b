# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The run's own world: a private mount and PID namespace (specs/threat-model.md §5.3).

`enter(spec)` is called in the process that is about to become the entrypoint (the
pre-started interpreter of `enclave.runner.zygote`, or the launcher `LAUNCHER` before it
execs the program). It unshares a mount and a PID namespace, forks the namespace's first
process (PID 1: it builds the view, then forks the entrypoint and reaps until it exits) and
returns only in the entrypoint's process, whose whole file system is then:

- `/` a tmpfs made read-only once built, holding only the directories below;
- the image's system directories (`/usr`, `/etc`, `/lib*`, the interpreter's prefixes:
  `spec["system"]`) bound read-only;
- `/dataset`, `/model` the run's copies of the session roots, read-only; `/output` a fresh
  writable directory; `/tmp` and `/dev/shm` fresh tmpfs; `/proc` of the run's PID namespace;
  `/dev` with `null`, `zero`, `full`, `random`, `urandom` only;
- the decrypted app, read-only, at `/app-<random>` (`spec["app_at"]`);
- each decrypted data bundle, read-only, at its mount under `/data/` (`spec["data"]`).

A write anywhere else fails with `EROFS`. The processes that stay outside the namespace (the
caller of `enter`) wait for the namespace's first process and exit with its status, so the
runner's process group, time limit and cancel work as before.

Standard library only, and no imports at module level beyond those: the module's source is
executed by `python -c` (`source()`), with no access to the enclave's packages.
"""

# os paths, not pathlib: every import here is paid by each run's interpreter before its run.
# ruff: noqa: PTH102, PTH103, PTH110, PTH112, PTH114, PTH115, PTH120, PTH123, PTH211, S108

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
#: Exit status of the outer process when the view cannot be built (the report says why).
SETUP_FAILED = 125
_DEVICES = ("null", "zero", "full", "random", "urandom")


def _libc() -> ctypes.CDLL:
    # The interpreter's own symbols include libc's; ctypes.util would import subprocess
    # (zygote.PRELOAD must not load it).
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(  # noqa: PLR0917 - mount(2)'s own arguments
    libc: ctypes.CDLL, src: str, dst: str, fstype: str, flags: int, data: str
) -> None:
    _check(
        libc.mount(src.encode(), dst.encode(), fstype.encode(), flags, data.encode() or None),
        f"mount {dst} ({'move' if flags & MS_MOVE else fstype or 'bind'})",
    )


def _bind(libc: ctypes.CDLL, src: str, dst: str, *, readonly: bool) -> None:
    _mount(libc, src, dst, "", MS_BIND | MS_REC, "")
    if readonly:
        _mount(libc, "", dst, "", MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID, "")


def _place(root: str, path: str, *, is_dir: bool) -> str:
    """Create `path` (absolute) under `root` as a directory or empty file; return it."""
    target = root + path
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if is_dir:
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        with open(target, "wb"):
            pass
    return target


def _build(libc: ctypes.CDLL, spec: dict[str, object]) -> str:
    """Build the view under `spec["root"]`; return the root (a tmpfs mount)."""
    root = str(spec["root"])
    try:
        _mount(libc, "none", "/", "", MS_REC | MS_PRIVATE, "")
    except OSError as exc:
        # "/" is no mount point when the process is chrooted into a directory (the enclave's
        # init chroots into /rootfs of its initramfs): nothing there propagates anyway.
        if exc.errno != errno.EINVAL:
            raise
    _mount(libc, "nb-run", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    # The run's own /tmp and /dev/shm first: an interpreter installed under /tmp (a venv in a
    # clone there) is then bound onto them, not hidden beneath them.
    for path in ("/tmp", "/dev/shm"):
        _mount(
            libc,
            "nb-tmp",
            _place(root, path, is_dir=True),
            "tmpfs",
            MS_NOSUID | MS_NODEV,
            "mode=1777",
        )
    system = spec["system"]
    assert isinstance(system, list)
    for path in system:
        if os.path.islink(path):
            # Merged /usr: /bin -> usr/bin stays a link (its target is bound itself).
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            _bind(libc, path, _place(root, path, is_dir=True), readonly=True)
    for name in ("dataset", "model", "output"):
        _bind(
            libc, str(spec[name]), _place(root, "/" + name, is_dir=True), readonly=name != "output"
        )
    _bind(libc, str(spec["app"]), _place(root, str(spec["app_at"]), is_dir=True), readonly=True)
    _bind_data(libc, root, spec.get("data") or [])
    for dev in _DEVICES:
        _bind(libc, "/dev/" + dev, _place(root, "/dev/" + dev, is_dir=False), readonly=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, root + "/dev/" + name)
    _mount(libc, "proc", _place(root, "/proc", is_dir=True), "proc", MS_NOSUID | MS_NODEV, "")
    os.mkdir(root + "/.old")  # pivot_root's put-old (left empty)
    # Every mount point exists now: the view's own tree becomes read-only before it is entered.
    _mount(libc, "", root, "", MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "")
    return root


def _bind_data(libc: ctypes.CDLL, root: str, data: object) -> None:
    """Bind each data bundle read-only at its mount (specs/threat-model.md §5.7)."""
    assert isinstance(data, list)
    for source, mount in data:
        _bind(libc, str(source), _place(root, str(mount), is_dir=True), readonly=True)


def _switch(libc: ctypes.CDLL, root: str) -> None:
    """Make `root` the process's `/` and hide the old one as far as the kernel lets us.

    `pivot_root` then detaching the old root where `/` is a mount point of its own (a
    host); where it is not (an initramfs, or a chroot into a directory, as in the enclave)
    the view is moved over `/` as `switch_root` does, or else only `chroot`ed into.
    """
    if libc.syscall(155, root.encode(), (root + "/.old").encode()) == 0:  # pivot_root, x86_64
        os.chdir("/")
        _check(libc.umount2(b"/.old", MNT_DETACH), "umount the old root")
        return
    os.chdir(root)
    with contextlib.suppress(OSError):
        _mount(libc, root, "/", "", MS_MOVE, "")
    os.chroot(".")
    os.chdir("/")


def _exit_like(status: int) -> None:
    """Leave with the status `os.waitpid` reported for a child (a signal as 128+N)."""
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _init(libc: ctypes.CDLL, spec: dict[str, object], report: int) -> None:
    """PID 1 of the run: build the view, fork the entrypoint, reap until it exits."""
    try:
        _switch(libc, _build(libc, spec))
    except OSError as exc:
        os.write(report, f"cannot build the run's view: {exc.strerror or exc}".encode())
        os._exit(SETUP_FAILED)
    pid = os.fork()
    if pid == 0:
        return
    os.close(report)
    while True:
        try:
            child, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if child == pid:
            _exit_like(status)


def enter(spec: dict[str, object]) -> None:
    """Move into the run's view; return in the entrypoint's process only (see module doc).

    `spec["report"]` is a pipe's write end: it gets one line when the view cannot be built
    and is closed (end of file) when the entrypoint starts.
    """
    report = int(str(spec["report"]))
    libc = _libc()
    try:
        _check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID), "unshare")
    except OSError as exc:
        os.write(report, f"cannot make the run's namespaces: {exc.strerror}".encode())
        os._exit(SETUP_FAILED)
    pid = os.fork()
    if pid == 0:
        _init(libc, spec, report)
        os.close(report)
        os.chdir("/")
        return
    os.close(report)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    _exit_like(os.waitpid(pid, 0)[1])


def source() -> str:
    """This module's source, to run with `python -c` (`LAUNCHER`, the zygote's bootstrap)."""
    with open(__file__, encoding="utf-8") as f:
        return f.read()


#: Run by `python -B -E -s -c LAUNCHER SPEC PROGRAM ARGS...`: enter the view, exec PROGRAM.
LAUNCHER_MAIN = """
_spec = json.loads(sys.argv[1])
enter(_spec)
os.execve(sys.argv[2], sys.argv[2:], os.environ)
"""


def launcher() -> str:
    """The `python -c` text of the launcher (`LAUNCHER_MAIN` after this module)."""
    return source() + LAUNCHER_MAIN


def dump(spec: dict[str, object]) -> str:
    """The spec as the launcher's first argument."""
    return json.dumps(spec)
