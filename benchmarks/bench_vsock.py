# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""vsock back-end throughput through the tests' fake QEMU and guest driver.

Starts `python -m user_runtime.vsock` as its own process, plays the guest with the fake
front-end of tests/user_runtime/vsock (4 KiB rx buffers as Linux posts them, 64 KiB tx
packets), and moves --size bytes guest -> host (to a sink process on PREFIX_9000) and
host -> guest (a source process through `CONNECT 5000`). The baseline is a plain Unix
socket copy of the same bytes between two processes. Runs alternate A B A B; each figure
is the median of --pairs runs with its range. Both ends of the vsock path are Python
here (the fake guest costs about as much CPU as the back-end), so this is a floor for
what a real guest kernel sees. No targets: the issue sets none.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "user_runtime" / "vsock"))
from vsock_fake import FakeFrontEnd  # type: ignore[import-not-found]

CHUNK = 1 << 20
MIB = 1024 * 1024
SINK = """
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); buf = bytearray(1 << 20); total = 0
while n := c.recv_into(buf):
    total += n
print(total, flush=True)
"""
SOURCE = """
import socket, sys
size = int(sys.argv[2]); block = bytes(range(256)) * 4096
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
if len(sys.argv) > 3:
    c.sendall(b"CONNECT 5000\\n"); line = b""
    while not line.endswith(b"\\n"):
        line += c.recv(1)
sent = 0
while sent < size:
    sent += c.send(block[: min(len(block), size - sent)])
c.close()
"""


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def start_backend(tmp: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    sock, prefix = tmp / "vhost.sock", tmp / "vsock"
    argv = [sys.executable, "-m", "user_runtime.vsock", "--socket", str(sock), "--uds-path"]
    proc = subprocess.Popen([*argv, str(prefix), "--log", str(tmp / "backend.log")])
    deadline = time.monotonic() + 30
    while not (sock.exists() and prefix.exists()):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("the vsock back-end did not start")
        time.sleep(0.01)
    return proc, sock, prefix


def guest_to_host(guest: FakeFrontEnd, prefix: Path, size: int) -> float:
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, f"{prefix}_9000"], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    assert sink.stdout.readline().strip() == "ready"
    block = bytes(range(256)) * 256  # 64 KiB
    start = time.perf_counter()
    conn = guest.connect(9000)
    for offset in range(0, size, len(block)):
        conn.send(block[: min(len(block), size - offset)])
    conn.close()
    guest.wait(lambda: sink.poll() is not None, "the sink")
    elapsed = time.perf_counter() - start
    assert int(sink.stdout.read().strip()) == size
    Path(f"{prefix}_9000").unlink()
    return size / elapsed / 1e6


def host_to_guest(guest: FakeFrontEnd, prefix: Path, size: int) -> float:
    guest.listen(5000)
    source = subprocess.Popen([sys.executable, "-c", SOURCE, str(prefix), str(size), "connect"])
    conn = guest.accept(5000)
    start = time.perf_counter()
    received = 0
    while chunk := conn.recv(CHUNK):
        received += len(chunk)
    elapsed = time.perf_counter() - start
    conn.close()
    assert received == size, received
    source.wait()
    return size / elapsed / 1e6


def unix_copy(tmp: Path, size: int) -> float:
    path = tmp / "plain.sock"
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    assert sink.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", SOURCE, str(path), str(size)], check=True)
    total = int(sink.stdout.readline())
    elapsed = time.perf_counter() - start
    sink.wait()
    path.unlink()
    assert total == size
    return size / elapsed / 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="256M", help="bytes each way per run (256M)")
    parser.add_argument("--pairs", type=int, default=5, help="A/B pairs (5)")
    args = parser.parse_args()
    size = parse_size(args.size)
    g2h: list[float] = []
    h2g: list[float] = []
    plain: list[float] = []
    cpu: dict[str, list[float]] = {"guest_to_host": [], "host_to_guest": []}
    with tempfile.TemporaryDirectory(prefix="bv", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        proc, sock, prefix = start_backend(tmp)
        guest = FakeFrontEnd(str(sock))
        try:
            guest.handshake()
            for _ in range(args.pairs):
                before = cpu_seconds(proc.pid)
                g2h.append(guest_to_host(guest, prefix, size))
                middle = cpu_seconds(proc.pid)
                h2g.append(host_to_guest(guest, prefix, size))
                after = cpu_seconds(proc.pid)
                plain.append(unix_copy(tmp, size))
                # MB per CPU second of the back-end alone: what a faster guest could get.
                cpu["guest_to_host"].append(size / max(middle - before, 1e-3) / 1e6)
                cpu["host_to_guest"].append(size / max(after - middle, 1e-3) / 1e6)
        finally:
            guest.close()
            proc.wait(timeout=30)
            sys.stderr.write((tmp / "backend.log").read_text())
        assert proc.returncode == 0
    print(
        json.dumps(
            {
                "bench": "vsock",
                "size": size,
                "pairs": args.pairs,
                "rx_buffer": 4096,
                "guest_to_host_mb_s": summary(g2h),
                "host_to_guest_mb_s": summary(h2g),
                "plain_unix_socket_mb_s": summary(plain),
                "backend_mb_per_cpu_s": {k: summary(v) for k, v in cpu.items()},
                "cpus": os.cpu_count(),
                "targets": [],
            }
        )
    )


if __name__ == "__main__":
    main()
