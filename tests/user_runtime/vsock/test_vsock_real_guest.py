# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The back-end under a real QEMU and a real Linux guest (specs/vsock.md §10).

QEMU's `microvm` machine with `vhost-user-vsock-device` (any QEMU >= 7; the nitro-enclave
machine uses the same device) boots the enclave kernel with a tiny static init
(`real_guest_init.c`): heartbeat on CID 3 port 9000, 64 MiB guest -> host on CID 2, then
two host-initiated connections through `CONNECT 5000`. Skipped when QEMU, the kernel or a
static C compiler is missing. TCG, not KVM: nested KVM is not reliable on build hosts.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from vsock_harness import short_dir

HERE = Path(__file__).parent
QEMU = os.environ.get("NB_QEMU") or shutil.which("qemu-system-x86_64") or ""
# Opt-in (NB_KERNEL): the booted image's own flow runs in every `make test` through
# tests/test_qemu_enclave.py; this one is for a kernel and QEMU of the developer's choice.
KERNEL = Path(os.environ.get("NB_KERNEL", "/nonexistent/bzImage"))
MIB = 1024 * 1024

pytestmark = pytest.mark.skipif(
    not (QEMU and KERNEL.exists() and shutil.which("gcc")),
    reason="needs qemu-system-x86_64, an enclave kernel (NB_KERNEL) and gcc",
)


def _newc(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    out = b""
    for ino, (name, mode, data, rdev_minor) in enumerate([*entries, ("TRAILER!!!", 0, b"", 0)]):
        major = 5 if rdev_minor else 0
        fields = (ino + 1, mode, 0, 0, 1, 0, len(data), 0, 0, major, rdev_minor, len(name) + 1, 0)
        head = b"070701" + b"".join(b"%08X" % value for value in fields) + name.encode() + b"\0"
        out += head + b"\0" * (-len(head) % 4) + data + b"\0" * (-len(data) % 4)
    return out


def _initrd(directory: Path) -> Path:
    init = directory / "init"
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(init), str(HERE / "real_guest_init.c")], check=True
    )
    archive = _newc(
        [
            (".", 0o40755, b"", 0),
            ("dev", 0o40755, b"", 0),
            ("dev/console", 0o20600, b"", 1),
            ("init", 0o100755, init.read_bytes(), 0),
        ]
    )
    path = directory / "initrd.gz"
    path.write_bytes(gzip.compress(archive))
    return path


def _listen(path: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    server.settimeout(300)
    return server


def _host_side(prefix: str, results: dict[str, object]) -> None:
    with _listen(f"{prefix}_9000") as heartbeat, _listen(f"{prefix}_7000") as sink:
        conn, _ = heartbeat.accept()
        with conn:
            results["heartbeat"] = conn.recv(1)
            conn.sendall(results["heartbeat"])  # type: ignore[arg-type]
        conn, _ = sink.accept()
        with conn:
            total = 0
            while chunk := conn.recv(MIB):
                total += len(chunk)
            results["guest_to_host"] = total
            conn.sendall(b"h" * MIB)


def _echo_through_connect(prefix: str, size: int) -> tuple[bytes, int]:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(300)
    client.connect(prefix)
    client.sendall(b"CONNECT 5000\n")
    line = b""
    while not line.endswith(b"\n") and (byte := client.recv(1)):
        line += byte
    received = [0]

    def reader() -> None:
        while chunk := client.recv(MIB):
            received[0] += len(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    client.sendall(bytes(size))
    client.shutdown(socket.SHUT_WR)
    thread.join(300)
    client.close()
    return line, received[0]


def test_real_guest_heartbeat_data_and_connect() -> None:
    directory = short_dir()
    backend: subprocess.Popen[bytes] | None = None
    try:
        initrd = _initrd(directory)
        vhost, prefix = str(directory / "v.sock"), str(directory / "vs")
        backend = subprocess.Popen(
            [sys.executable, "-m", "user_runtime.vsock", "--socket", vhost, "--uds-path", prefix,
             "--log", str(directory / "backend.log")]
        )  # fmt: skip
        while not (Path(vhost).exists() and Path(prefix).exists()):
            assert backend.poll() is None
            time.sleep(0.01)
        results: dict[str, object] = {}
        host = threading.Thread(target=_host_side, args=(prefix, results), daemon=True)
        host.start()
        qemu = subprocess.Popen(
            [QEMU, "-M", "microvm,memory-backend=mem,acpi=off", "-accel", "tcg", "-cpu", "max",
             "-m", "256M", "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
             "-chardev", f"socket,id=c0,path={vhost}",
             "-device", "vhost-user-vsock-device,chardev=c0", "-kernel", str(KERNEL),
             "-initrd", str(initrd), "-append", "console=ttyS0 panic=1",
             "-nographic", "-no-reboot"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert qemu.stdout is not None
        lines = []
        try:
            for line in qemu.stdout:
                lines.append(line.rstrip())
                if "listening on 5000" in line:
                    results["small"] = _echo_through_connect(prefix, 1000)
                    results["big"] = _echo_through_connect(prefix, 64 * MIB)
                if "guest: done" in line:
                    break
        finally:
            qemu.terminate()
            qemu.wait(60)
        guest = [line for line in lines if line.startswith("guest:")]
        assert guest[:3] == [
            "guest: up",
            "guest: heartbeat ok",
            f"guest: sent {64 * MIB}, host answered {MIB}",
        ], lines[-30:]
        assert results["heartbeat"] == b"\xb7"
        assert results["guest_to_host"] == 64 * MIB
        small_line, small = results["small"]  # type: ignore[misc]
        big_line, big = results["big"]  # type: ignore[misc]
        assert small_line.startswith(b"OK ")
        assert (small, big) == (1000, 64 * MIB)
        assert big_line.startswith(b"OK ")
        assert "guest: echoed 67108864" in guest
        assert backend.wait(60) == 0  # QEMU is gone: the back-end ends cleanly
        assert "guest fault" not in (directory / "backend.log").read_text()
    finally:
        if backend is not None and backend.poll() is None:
            backend.kill()
            backend.wait()
        shutil.rmtree(directory, ignore_errors=True)
