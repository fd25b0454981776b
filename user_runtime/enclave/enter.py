# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Enter an image's own tree and exec its command (specs/qemu-backend.md §8.2).

Run as `python -I enter.py SPEC_JSON` by the local backend as the first process of
fresh mount, network and PID namespaces (`unshare --mount --net --pid --fork`). It builds what
the enclave's init builds before its chroot (enclave-image.md §13.2 step 6), on the image's
unpacked tree bound read-only as the new `/`:

- `/proc` of the new PID namespace, `/sys` read-only;
- `/dev` a small tmpfs with `null`, `zero`, `full`, `random`, `urandom`, `tty` bound from the
  host, `pts` (a new devpts instance), `shm` (tmpfs), and the `fd`/`stdin`/... links;
- `/run` and `/tmp` fresh tmpfs; the server's work directory a tmpfs of `--memory` MiB
  (`huge=within_size` when the kernel has it) at the path the image's command names;
- the binds the simulated host side needs (`spec["binds"]`): the socket directory (the
  server's Unix socket and the KMS relay's), the simulated NSM's PKI read-only;

then `pivot_root`s into it, detaches the host's tree, and execs the command with exactly the
given environment, the program looked up on that environment's `PATH` as init's `execvp`.

Standard library only: it runs on the host's interpreter before the image's takes over.
"""

# ruff: noqa: PTH102, PTH103, PTH211, S108

from __future__ import annotations

import ctypes
import json
import os
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86_64
#: Exit status when the tree cannot be entered (stderr says why).
ENTER_FAILED = 126
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src: str, dst: str, fstype: str, flags: int, data: str = "") -> None:
    """Mount `src` on `dst` (the system call); raise OSError on failure."""
    _check(
        _libc.mount(src.encode(), dst.encode(), fstype.encode(), flags, data.encode() or None),
        f"mount {fstype or 'bind'} on {dst}",
    )


def bind(src: str, dst: str, *, readonly: bool, flags: int = 0) -> None:
    """Bind `src` on `dst`, then make it read-only (with `flags`) when asked."""
    mount(src, dst, "", MS_BIND | flags)
    if readonly:
        mount("", dst, "", MS_BIND | MS_REMOUNT | MS_RDONLY | flags)


def _dir(root: str, path: str, mode: int = 0o755) -> str:
    target = root + path
    os.makedirs(target, mode=mode, exist_ok=True)
    return target


def _dev(root: str) -> None:
    dev = _dir(root, "/dev")
    mount("nb-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name in DEVICES:
        node = f"{dev}/{name}"
        os.close(os.open(node, os.O_CREAT | os.O_WRONLY, 0o666))
        bind(f"/dev/{name}", node, readonly=False)
    os.mkdir(f"{dev}/pts", 0o755)
    mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666")
    os.mkdir(f"{dev}/shm", 0o1777)
    mount("nb-shm", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for name, target in LINKS.items():
        os.symlink(target, f"{dev}/{name}")


def _work(root: str, path: str, size_mib: int) -> None:
    target = _dir(root, path, 0o700)
    opts = f"mode=0700,size={max(1, size_mib)}m"
    try:
        mount("nb-enclave-work", target, "tmpfs", MS_NOSUID | MS_NODEV, opts + ",huge=within_size")
    except OSError:
        mount("nb-enclave-work", target, "tmpfs", MS_NOSUID | MS_NODEV, opts)


def build(spec: dict[str, object]) -> None:
    """Mount the tree's view (module docstring); `/` is still the host's afterwards."""
    root = str(spec["root"])
    mount("none", "/", "", MS_REC | MS_PRIVATE)
    bind(root, root, readonly=True, flags=MS_NOSUID | MS_NODEV)
    nosys = MS_NOSUID | MS_NODEV | MS_NOEXEC
    mount("proc", _dir(root, "/proc"), "proc", nosys)
    mount("sysfs", _dir(root, "/sys"), "sysfs", nosys | MS_RDONLY)
    _dev(root)
    mount("nb-run", _dir(root, "/run"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    mount("nb-tmp", _dir(root, "/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    _work(root, str(spec["workdir"]), int(spec["memory_mib"]))  # type: ignore[call-overload]
    binds = spec["binds"]
    assert isinstance(binds, list)
    for item in binds:
        bind(item["src"], _dir(root, item["dst"]), readonly=bool(item["ro"]), flags=nosys)


def switch(root: str) -> None:
    """`pivot_root` into `root` and detach the host's tree (no put-old directory needed)."""
    os.chdir(root)
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the host's tree")
    os.chdir("/")


def environment(lines: list[str]) -> dict[str, str]:
    """`NAME=value` lines as init reads `/env`: a later NAME= wins."""
    env: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if sep and name:
            env[name] = value
    return env


def main() -> None:
    """Enter the tree described by argv[1] and exec its command."""
    spec = json.loads(sys.argv[1])
    try:
        build(spec)
        switch(str(spec["root"]))
    except OSError as exc:
        sys.stderr.write(f"enclave_enter: {exc.strerror or exc}\n")
        sys.exit(ENTER_FAILED)
    if spec.get("lock_fd") is not None:
        os.close(int(spec["lock_fd"]))  # the cache's lock stays with unshare; not the image's
    argv = [str(a) for a in spec["argv"]]
    env = environment([str(e) for e in spec["env"]])
    try:
        os.execvpe(argv[0], argv, env)  # noqa: S606 - the image's own command, by design
    except OSError as exc:
        sys.stderr.write(f"enclave_enter: exec {argv[0]}: {exc.strerror or exc}\n")
        sys.exit(ENTER_FAILED)


if __name__ == "__main__":
    main()
