# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Benchmark: copying into a `user-runtime sync` mount vs `cp` into a tmpfs folder (issue 6 item 4).

Usage: bench_sync.py [--size 1G] [--files 10000] [--file-size 4K] [--dir DIR] [--repeat 2]

In one run: a large file of --size and a tree of --files small files (100
folders) are made in a tmpfs folder; `cp` copies them into another tmpfs folder
(the baseline) and into the mount of a real `user-runtime sync` daemon backed
by a real enclave server process (session filesystem in RAM, Unix socket),
with the backing store in the same tmpfs. Each copy is checked in the enclave.
For scale, the small files are also copied into the cheapest filesystem the
prescribed library (mfusepy) can serve (`_noop_fuse.py`: a dict, data discarded),
the ceiling of any mfusepy design before it does any work, and, when gcc and
libfuse3's headers are present, into its compiled twin on libfuse's low-level API
(`_noop_fuse.c`), the ceiling of a compiled FUSE daemon (specs/sync.md §12).
Each figure is the best of --repeat runs (the machine is shared).
Ends with one JSON line holding the figures and the issue's targets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
AWS_SAMPLE_MBS = 17.0

SERVER = """
import sys
from pathlib import Path
from enclave.runner_interface import UnavailableRunner
from enclave.server import EnclaveServer
from enclave.sessionfs import SessionFs, SessionLimits
from enclave.transport import SocketServer, listen_unix
fs = SessionFs(SessionLimits(budget_bytes=int(sys.argv[2])))
server = SocketServer(EnclaveServer(fs, UnavailableRunner()), listen_unix(Path(sys.argv[1])))
print("listening", flush=True)
server.serve_forever()
"""


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - start


def user_runtime(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "user_runtime", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )


def make_sources(src: Path, size: int, files: int, file_size: int) -> None:
    block = os.urandom(1 << 20)
    with (src / "big.bin").open("wb") as out:
        left = size
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= len(block)
    tree = src / "tree"
    for i in range(files):
        folder = tree / f"d{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.csv").write_bytes(os.urandom(file_size))


def enclave_check(address: str, size: int, files: int) -> None:
    from user_runtime.rpc_client import EnclaveClient

    with EnclaveClient.connect(address) as client:
        assert client.stat("dataset/big.bin").size == size, "large file incomplete in the enclave"
        count = sum(len(client.listdir(f"dataset/tree/d{d:02d}")) for d in range(min(files, 100)))
        assert count == files, f"{count} of {files} small files in the enclave"


def _small_in_enclave(client: object, files: int, file_size: int) -> int:
    from user_runtime.rpc_client import EnclaveClient

    assert isinstance(client, EnclaveClient)
    return sum(
        sum(1 for _, info in client.listdir(f"dataset/tree/d{d:02d}") if info.size == file_size)
        for d in range(min(files, 100))
    )


def timed_until_enclave(
    argv: list[str], address: str, files: int, file_size: int
) -> tuple[float, float]:
    """Seconds from the start of `argv` until it returns, and until the enclave holds the tree.

    "Holds" is checked by listing the enclave's folders (every small file there with
    its full size), polled every 20 ms after `argv` returned: close does not wait for
    the enclave (specs/sync.md §6.3), so `cp` returning proves nothing about it.
    """
    from user_runtime.rpc_client import EnclaveClient

    with EnclaveClient.connect(address) as client:
        start = time.perf_counter()
        subprocess.run(argv, check=True)
        returned = time.perf_counter() - start
        while _small_in_enclave(client, files, file_size) < files:
            time.sleep(0.02)
        return returned, time.perf_counter() - start


def timed_large_until_enclave(argv: list[str], address: str, size: int) -> float:
    """Seconds from the start of `argv` until the enclave's copy of the large file is whole.

    The daemon sends a file's writes in order on one connection and the server applies
    them in order, so the size reaching `size` means every byte before it arrived.
    """
    from user_runtime.rpc_client import EnclaveClient

    with EnclaveClient.connect(address) as client:
        start = time.perf_counter()
        subprocess.run(argv, check=True)
        while client.stat("dataset/big.bin").size < size:
            time.sleep(0.005)
        return time.perf_counter() - start


def round_trip_us(address: str, count: int = 2000) -> float:
    """Median microseconds of one enclave round trip (a ping), the wait a close costs.

    Timed on a thread other than the main one, as the mount's callbacks are (the
    client's main thread waits through a helper: specs/rpc-protocol.md §11).
    """
    from user_runtime.rpc_client import EnclaveClient

    samples: list[float] = []

    def pings() -> None:
        with EnclaveClient.connect(address) as client:
            for _ in range(count):
                start = time.perf_counter()
                client.ping()
                samples.append(time.perf_counter() - start)

    thread = threading.Thread(target=pings)
    thread.start()
    thread.join()
    return sorted(samples)[len(samples) // 2] * 1e6


def build_c_noop(work: Path) -> str | None:
    """Compile `_noop_fuse.c`; None (and why, on stdout) when this machine cannot."""
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True, text=True, check=False
    )
    if flags.returncode != 0 or not shutil.which("gcc"):
        print("no gcc or libfuse3 headers (apt install libfuse3-dev): skipping the C no-op")
        return None
    binary = str(work / "noop_fuse")
    source = str(REPO / "benchmarks" / "_noop_fuse.c")
    subprocess.run(["gcc", "-O2", "-o", binary, source, *flags.stdout.split()], check=True)
    return binary


def noop_copy(tree: str, mountpoint: Path, server_argv: list[str]) -> float:
    """Seconds for `cp -r` of the tree into a fresh no-op FUSE mount."""
    mountpoint.mkdir(exist_ok=True)
    server = subprocess.Popen([*server_argv, str(mountpoint)])
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mountpoint):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the no-op FUSE filesystem did not mount")
            time.sleep(0.05)
        return timed(["cp", "-r", tree, str(mountpoint)])
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False, capture_output=True)
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False, capture_output=True)
        server.wait(timeout=20)


def measure_ceilings(
    tree: str, work: Path, c_noop: str | None, address: str, best: dict[str, float]
) -> None:
    """The no-op filesystems' small-file copies and the enclave round trip, into `best`."""
    py_noop = [sys.executable, str(REPO / "benchmarks" / "_noop_fuse.py")]
    best["noop_small"] = min(best["noop_small"], noop_copy(tree, work / "noop", py_noop))
    if c_noop is not None:
        seconds = noop_copy(tree, work / "noop_c", [c_noop])
        best["noop_c_small"] = min(best["noop_c_small"], seconds)
    best["round_trip_us"] = min(best.get("round_trip_us", 1e9), round_trip_us(address))


def measure(opts: argparse.Namespace, size: int, file_size: int) -> dict[str, float]:
    """Best-of-N seconds for cp into tmpfs and into the mount, large file and small files."""
    work = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=opts.dir))
    server = None
    folder, state = work / "synced_folder", work / "state"
    best = {"cp_large": 1e9, "cp_small": 1e9, "sync_large": 1e9, "sync_small": 1e9}
    best["sync_small_cp_returned"] = 1e9
    best["noop_small"] = 1e9
    c_noop = None
    try:
        src, dst = work / "src", work / "tmpfs-copy"
        src.mkdir()
        print(f"making {size >> 20} MiB file and {opts.files} files of {file_size} B in {src}")
        make_sources(src, size, opts.files, file_size)
        c_noop = build_c_noop(work)
        if c_noop is not None:
            best["noop_c_small"] = 1e9
        sock = work / "enclave.sock"
        budget = size + opts.files * (file_size + 4096) + (256 << 20)
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(sock), str(budget)], cwd=REPO, stdout=subprocess.PIPE
        )
        assert server.stdout is not None
        assert server.stdout.readline() == b"listening\n"
        address = f"unix:{sock}"
        big, tree = str(src / "big.bin"), str(src / "tree")
        for run in range(opts.repeat):
            dst.mkdir()
            best["cp_large"] = min(best["cp_large"], timed(["cp", big, str(dst)]))
            best["cp_small"] = min(best["cp_small"], timed(["cp", "-r", tree, str(dst)]))
            shutil.rmtree(dst)
            store = work / f"store{run}"
            user_runtime(
                "sync", "-d", str(folder), "--enclave", address,
                "--store", str(store), "--state-dir", str(state),
            )  # fmt: skip
            try:
                ds = folder / "dataset"
                seconds = timed_large_until_enclave(["cp", big, str(ds)], address, size)
                best["sync_large"] = min(best["sync_large"], seconds)
                returned, held = timed_until_enclave(
                    ["cp", "-r", tree, str(ds)], address, opts.files, file_size
                )
                best["sync_small"] = min(best["sync_small"], held)
                best["sync_small_cp_returned"] = min(best["sync_small_cp_returned"], returned)
                enclave_check(address, size, opts.files)
                subprocess.run(["rm", "-rf", str(ds / "big.bin"), str(ds / "tree")], check=True)
            finally:
                user_runtime("sync", "--stop", "-d", str(folder), "--state-dir", str(state))
            shutil.rmtree(store)
            measure_ceilings(tree, work, c_noop, address, best)
            print(f"run {run + 1}: " + ", ".join(f"{k} {v:.3f}s" for k, v in best.items()))
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--file-size", default="4K")
    parser.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    parser.add_argument("--repeat", type=int, default=2)
    opts = parser.parse_args()
    size, file_size = parse_size(opts.size), parse_size(opts.file_size)
    best = measure(opts, size, file_size)
    mb = 1e6
    cp_large = size / best["cp_large"] / mb
    sync_large = size / best["sync_large"] / mb
    cp_small = opts.files / best["cp_small"]
    sync_small = opts.files / best["sync_small"]
    sync_small_returned = opts.files / best["sync_small_cp_returned"]
    large_ratio = sync_large / cp_large
    small_ratio = sync_small / cp_small
    noop_small = opts.files / best["noop_small"]
    noop_ratio = noop_small / cp_small
    vs_aws = sync_large / AWS_SAMPLE_MBS
    print(f"large file: cp to tmpfs {cp_large:.0f} MB/s, into the mount {sync_large:.0f} MB/s")
    print(f"            = {large_ratio:.2f}x cp, {vs_aws:.1f}x the AWS sample's 17 MB/s")
    vs_noop = sync_small / noop_small
    print(f"small files: cp to tmpfs {cp_small:.0f} files/s, into the mount {sync_small:.0f}/s")
    print(f"             = {small_ratio:.3f}x cp, {vs_noop:.2f}x the no-op (until the enclave")
    print(f"             holds them; cp itself returned at {sync_small_returned:.0f}/s)")
    print(f"             (a no-op mfusepy filesystem: {noop_small:.0f}/s = {noop_ratio:.3f}x cp)")
    budget_us = 1e6 / (0.1 * cp_small)
    print(f"             at 0.1x cp a file may take {budget_us:.0f} us in all; one enclave round")
    print(f"             trip (what a close that waits for the enclave costs) takes "
          f"{best['round_trip_us']:.0f} us")  # fmt: skip
    noop_c = {}
    if "noop_c_small" in best:
        rate = opts.files / best["noop_c_small"]
        print(f"             (its compiled twin, libfuse low-level: {rate:.0f}/s = "
              f"{rate / cp_small:.3f}x cp)")  # fmt: skip
        noop_c = {"noop_c_small_files_s": round(rate, 1),
                  "noop_c_small_vs_cp": round(rate / cp_small, 3)}  # fmt: skip
    figures = {
        "size_bytes": size,
        "files": opts.files,
        "file_size": file_size,
        "cp_large_mb_s": round(cp_large, 1),
        "sync_large_mb_s": round(sync_large, 1),
        "cp_small_files_s": round(cp_small, 1),
        "sync_small_files_s": round(sync_small, 1),
        "sync_small_cp_returned_files_s": round(sync_small_returned, 1),
        "noop_mfusepy_small_files_s": round(noop_small, 1),
        "noop_mfusepy_small_vs_cp": round(noop_ratio, 3),
        **noop_c,
        "per_file_budget_at_goal_us": round(budget_us, 1),
        "enclave_round_trip_us": round(best["round_trip_us"], 1),
        "targets": [
            {"name": "large_vs_cp", "value": round(large_ratio, 3), "goal": ">= 0.4",
             "met": large_ratio >= 0.4},
            {"name": "large_vs_aws_sample", "value": round(vs_aws, 1), "goal": ">= 25",
             "met": vs_aws >= 25},
            {"name": "small_in_enclave_vs_noop", "value": round(vs_noop, 3), "goal": ">= 0.6",
             "met": vs_noop >= 0.6},
            {"name": "small_in_enclave_vs_cp", "value": round(small_ratio, 3), "goal": ">= 0.05",
             "met": small_ratio >= 0.05},
            {"name": "small_in_enclave_vs_cp_stretch", "value": round(small_ratio, 3),
             "goal": ">= 0.1", "met": small_ratio >= 0.1},
        ],
    }  # fmt: skip
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
