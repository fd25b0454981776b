# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""RPC throughput: pipelined writes client -> enclave-server over a Unix socket.

Starts `enclave-server serve` as its own process, writes --size bytes to one
session file in 1 MiB pipelined chunks, reads them back, and compares with a
raw Unix-socket copy of the same bytes (sender -> a process that discards them)
measured in the same run. Also: small-request round trips and small files/s.
Target (issue 5): pipelined write >= 500 MB/s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from user_runtime.rpc.client import EnclaveClient

CHUNK = 1024 * 1024
SINK = """
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); buf = bytearray(1 << 20); total = 0
while n := c.recv_into(buf):
    total += n
c.sendall(total.to_bytes(8, "big"))
"""


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def wait_socket(path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                time.sleep(0.02)
                continue
            return
    raise SystemExit(f"server at {path} did not start")


def raw_socket_copy(tmp: Path, data: memoryview, reps: int) -> float:
    path = tmp / "sink.sock"
    proc = subprocess.Popen([sys.executable, "-c", SINK, str(path)])
    try:
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            start = time.perf_counter()
            for _ in range(reps):
                for offset in range(0, len(data), CHUNK):
                    s.sendall(data[offset : offset + CHUNK])
            s.shutdown(socket.SHUT_WR)
            total = int.from_bytes(s.recv(8), "big")
            elapsed = time.perf_counter() - start
        assert total == len(data) * reps
    finally:
        proc.wait()
    return elapsed


def measure_client(address: str, data: memoryview, reps: int, small_files: int) -> dict[str, float]:
    size = reps * len(data)
    start = time.perf_counter()
    client = EnclaveClient.connect(address)
    figures = {"connect_ms": (time.perf_counter() - start) * 1000}
    client.create("dataset/big.bin")
    start = time.perf_counter()
    for rep in range(reps):
        client.write_pipelined("dataset/big.bin", rep * len(data), data)
    client.flush("dataset/big.bin")
    figures["write_s"] = time.perf_counter() - start
    assert client.stat("dataset/big.bin").size == size
    start = time.perf_counter()
    read_back = sum(
        len(client.read("dataset/big.bin", off, CHUNK)) for off in range(0, size, CHUNK)
    )
    figures["read_s"] = time.perf_counter() - start
    assert read_back == size
    client.unlink("dataset/big.bin")
    start = time.perf_counter()
    for _ in range(2000):
        client.ping()
    figures["rtt_us"] = (time.perf_counter() - start) / 2000 * 1e6
    client.mkdir("dataset/small")
    payload = b"x" * 1000
    start = time.perf_counter()
    for i in range(small_files):
        path = f"dataset/small/f{i}"
        client.create(path)
        client.write_pipelined(path, 0, payload)
        client.flush(path)
    figures["small_files_per_s"] = small_files / (time.perf_counter() - start)
    client.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1G", help="bytes to write (default 1G)")
    parser.add_argument("--small-files", type=int, default=2000)
    args = parser.parse_args()
    size = parse_size(args.size)
    data = memoryview(os.urandom(min(size, 64 * CHUNK)))
    reps = max(1, size // len(data))
    size = reps * len(data)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sock = tmp / "enclave.sock"
        server = subprocess.Popen(
            [
                Path(sys.executable).parent / "enclave-server",
                "serve",
                "--unix",
                str(sock),
                "--memory-budget",
                f"{size // CHUNK + 64}M",
            ],
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_socket(sock)
            figures = measure_client(f"unix:{sock}", data, reps, args.small_files)
        finally:
            server.terminate()
            server.wait()
        raw_s = raw_socket_copy(tmp, data, reps)

    write_mbs = size / figures["write_s"] / 1e6
    read_mbs = size / figures["read_s"] / 1e6
    raw_mbs = size / raw_s / 1e6
    print(f"size: {size / 1e6:.0f} MB in 1 MiB frames")
    print(f"pipelined write: {write_mbs:,.0f} MB/s  (raw unix socket copy: {raw_mbs:,.0f} MB/s)")
    print(f"read back (one round trip per 1 MiB): {read_mbs:,.0f} MB/s")
    print(f"small request round trip: {figures['rtt_us']:.0f} us")
    print(f"small files (create + write + flush): {figures['small_files_per_s']:,.0f}/s")
    print(f"connect + handshake: {figures['connect_ms']:.1f} ms")
    target = {
        "name": "pipelined write MB/s",
        "value": round(write_mbs, 1),
        "goal": ">= 500",
        "met": write_mbs >= 500,
    }
    result = {
        "size_bytes": size,
        "write_mb_s": round(write_mbs, 1),
        "read_mb_s": round(read_mbs, 1),
        "raw_socket_mb_s": round(raw_mbs, 1),
        "write_vs_raw_socket": round(write_mbs / raw_mbs, 3),
        "rtt_us": round(figures["rtt_us"], 1),
        "small_files_per_s": round(figures["small_files_per_s"], 1),
        "connect_ms": round(figures["connect_ms"], 2),
        "targets": [target],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
