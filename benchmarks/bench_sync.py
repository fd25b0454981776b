# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Benchmark: copying into a `user-runtime sync` mount vs `cp` into a tmpfs folder (issue 6 item 4).

Usage: bench_sync.py [--size 1G] [--files 10000] [--file-size 4K] [--dir DIR] [--pairs 5]
                    [--pyfuse3-python PY]

In one run: a large file of --size and a tree of --files small files (100
folders) are made in a tmpfs folder; `cp` copies them into another tmpfs folder
(the baseline) and into the mount of a real `user-runtime sync` daemon backed
by a real enclave server process (session filesystem in RAM, Unix socket),
with the backing store in the same tmpfs. Each copy is checked in the enclave.
For scale, the small files are also copied into the cheapest filesystem the
mount's library (mfusepy) can serve (`_noop_fuse.py`: a dict, data discarded,
mounted with the mount's own options), the ceiling of any mfusepy design before it
does any work; with --pyfuse3-python, into its twin on pyfuse3
(`_noop_pyfuse3.py`, the library not taken); and, when gcc and
libfuse3's headers are present, into its compiled twin on libfuse's low-level API
(`_noop_fuse.c`), the ceiling of a compiled FUSE daemon (specs/sync.md §12).
The mount is measured twice per pair: as installed (getattr compiled,
specs/sync.md §8.1) and with NB_SYNC_FASTPATH=0 (every callback in Python,
small files only), the measurement behind that choice. The two mounts and the
no-op run in --pairs rounds (which goes first rotates, so a drift in the
shared machine's load hits all three); every figure is reported as the median
and range over the pairs, ratios taken within each pair. The daemon's, the
enclave server's and the no-op's CPU time per small file are measured too
(from /proc), less sensitive to the load than wall time.
Ends with one JSON line holding the figures and the issue's targets (judged on
the medians).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
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
from enclave.runner.interface import UnavailableRunner
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


def user_runtime(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "user_runtime", *args],
        cwd=REPO,
        env=None if env is None else os.environ | env,
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


def enclave_check(address: str, size: int | None, files: int) -> None:
    from user_runtime.rpc.client import EnclaveClient

    with EnclaveClient.connect(address) as client:
        if size is not None:
            big = client.stat("dataset/big.bin").size
            assert big == size, "large file incomplete in the enclave"
        count = sum(len(client.listdir(f"dataset/tree/d{d:02d}")) for d in range(min(files, 100)))
        assert count == files, f"{count} of {files} small files in the enclave"


def _small_in_enclave(client: object, files: int, file_size: int) -> int:
    from user_runtime.rpc.client import EnclaveClient

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
    from user_runtime.rpc.client import EnclaveClient

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
    from user_runtime.rpc.client import EnclaveClient

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
    from user_runtime.rpc.client import EnclaveClient

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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def noop_copy(tree: str, mountpoint: Path, server_argv: list[str]) -> tuple[float, float]:
    """Seconds for `cp -r` of the tree into a fresh no-op FUSE mount, and its CPU seconds."""
    mountpoint.mkdir(exist_ok=True)
    server = subprocess.Popen([*server_argv, str(mountpoint)])
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mountpoint):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the no-op FUSE filesystem did not mount")
            time.sleep(0.05)
        cpu = cpu_seconds(server.pid)
        seconds = timed(["cp", "-r", tree, str(mountpoint)])
        return seconds, cpu_seconds(server.pid) - cpu
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False, capture_output=True)
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False, capture_output=True)
        server.wait(timeout=20)


def measure_noop(
    tree: str, work: Path, c_noop: str | None, pyfuse3: str | None, run: dict[str, float]
) -> None:
    """The no-op filesystems' small-file copies, into `run`."""
    py_noop = [sys.executable, str(REPO / "benchmarks" / "_noop_fuse.py")]
    run["noop_small"], run["noop_cpu"] = noop_copy(tree, work / "noop", py_noop)
    if c_noop is not None:
        run["noop_c_small"] = noop_copy(tree, work / "noop_c", [c_noop])[0]
    if pyfuse3 is not None:
        argv = [pyfuse3, str(REPO / "benchmarks" / "_noop_pyfuse3.py")]
        run["noop_pyfuse3_small"], run["noop_pyfuse3_cpu"] = noop_copy(
            tree, work / "noop_pyfuse3", argv
        )


def measure_sync(
    opts: argparse.Namespace,
    work: Path,
    address: str,
    server_pid: int,
    run: dict[str, float],
    *,
    compiled: bool = True,
) -> None:
    """One mount: the large file, then the small files until the enclave holds them.

    With `compiled` False the mount answers getattr in Python (NB_SYNC_FASTPATH=0,
    specs/sync.md §8.1) and copies only the small files (`sync_small_python`).
    """
    src, folder, state = work / "src", work / "synced_folder", work / "state"
    big, tree = str(src / "big.bin"), str(src / "tree")
    store = work / "store"
    out = user_runtime(
        "sync", "-d", str(folder), "--enclave", address,
        "--store", str(store), "--state-dir", str(state),
        env={"NB_SYNC_FASTPATH": "1" if compiled else "0"},
    ).stdout  # fmt: skip
    daemon = int(out.split("(pid ", 1)[1].split(",", 1)[0])
    try:
        ds = folder / "dataset"
        if compiled:
            run["sync_large"] = timed_large_until_enclave(
                ["cp", big, str(ds)], address, opts.size_b
            )
        cpu = cpu_seconds(daemon), cpu_seconds(server_pid)
        returned, held = timed_until_enclave(
            ["cp", "-r", tree, str(ds)], address, opts.files, opts.file_size_b
        )
        if not compiled:
            run["sync_small_python"] = held
            run["daemon_cpu_python"] = cpu_seconds(daemon) - cpu[0]
            enclave_check(address, None, opts.files)
            subprocess.run(["rm", "-rf", str(ds / "tree")], check=True)
            return
        run["daemon_cpu"] = cpu_seconds(daemon) - cpu[0]
        run["server_cpu"] = cpu_seconds(server_pid) - cpu[1]
        run["sync_small"], run["sync_small_cp_returned"] = held, returned
        enclave_check(address, opts.size_b, opts.files)
        subprocess.run(["rm", "-rf", str(ds / "big.bin"), str(ds / "tree")], check=True)
    finally:
        user_runtime("sync", "--stop", "-d", str(folder), "--state-dir", str(state))
    shutil.rmtree(store)


def measure(opts: argparse.Namespace) -> list[dict[str, float]]:
    """--pairs alternating runs: cp into tmpfs, the mount and the no-op, seconds each."""
    work = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=opts.dir))
    server = None
    runs: list[dict[str, float]] = []
    try:
        src, dst = work / "src", work / "tmpfs-copy"
        src.mkdir()
        print(f"making {opts.size_b >> 20} MiB file and {opts.files} files of {opts.file_size_b} B")
        make_sources(src, opts.size_b, opts.files, opts.file_size_b)
        c_noop = build_c_noop(work)
        sock = work / "enclave.sock"
        budget = opts.size_b + opts.files * (opts.file_size_b + 4096) + (256 << 20)
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(sock), str(budget)], cwd=REPO, stdout=subprocess.PIPE
        )
        assert server.stdout is not None
        assert server.stdout.readline() == b"listening\n"
        address = f"unix:{sock}"
        big, tree = str(src / "big.bin"), str(src / "tree")
        for index in range(opts.pairs):
            run: dict[str, float] = {}
            dst.mkdir()
            run["cp_large"] = timed(["cp", big, str(dst)])
            run["cp_small"] = timed(["cp", "-r", tree, str(dst)])
            shutil.rmtree(dst)
            # Rotate which goes first, so a drift in the machine's load hits all three.
            pid = server.pid
            steps = [
                functools.partial(measure_sync, opts, work, address, pid, run),
                functools.partial(measure_noop, tree, work, c_noop, opts.pyfuse3_python, run),
                functools.partial(measure_sync, opts, work, address, pid, run, compiled=False),
            ]
            for step in steps[index % 3 :] + steps[: index % 3]:
                step()
            run["round_trip_us"] = round_trip_us(address)
            runs.append(run)
            print(f"pair {index + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in run.items()))
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    return runs


def _stats(values: list[float], digits: int) -> dict[str, float]:
    """Median and range of one figure over the runs."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def figures(opts: argparse.Namespace, runs: list[dict[str, float]]) -> dict[str, object]:
    """Per-run rates and ratios, then their medians and ranges (ratios are per pair)."""
    mb, files = 1e6, opts.files
    per: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        per.setdefault(name, []).append(value)

    for run in runs:
        add("cp_large_mb_s", opts.size_b / run["cp_large"] / mb)
        add("sync_large_mb_s", opts.size_b / run["sync_large"] / mb)
        add("cp_small_files_s", files / run["cp_small"])
        add("sync_small_files_s", files / run["sync_small"])
        add("sync_small_cp_returned_files_s", files / run["sync_small_cp_returned"])
        add("noop_mfusepy_small_files_s", files / run["noop_small"])
        add("large_vs_cp", run["cp_large"] / run["sync_large"])
        add("large_vs_aws_sample", opts.size_b / run["sync_large"] / mb / AWS_SAMPLE_MBS)
        add("small_in_enclave_vs_cp", run["cp_small"] / run["sync_small"])
        add("small_in_enclave_vs_noop", run["noop_small"] / run["sync_small"])
        add("noop_mfusepy_small_vs_cp", run["cp_small"] / run["noop_small"])
        add("small_python_only_files_s", files / run["sync_small_python"])
        add("small_compiled_vs_python_only", run["sync_small_python"] / run["sync_small"])
        add("small_python_only_vs_cp", run["cp_small"] / run["sync_small_python"])
        add("daemon_cpu_us_per_file", run["daemon_cpu"] / files * 1e6)
        add("daemon_cpu_python_only_us_per_file", run["daemon_cpu_python"] / files * 1e6)
        add("server_cpu_us_per_file", run["server_cpu"] / files * 1e6)
        add("noop_cpu_us_per_file", run["noop_cpu"] / files * 1e6)
        add("enclave_round_trip_us", run["round_trip_us"])
        if "noop_pyfuse3_small" in run:
            add("noop_pyfuse3_small_files_s", files / run["noop_pyfuse3_small"])
            add("noop_pyfuse3_small_vs_mfusepy", run["noop_small"] / run["noop_pyfuse3_small"])
            add("noop_pyfuse3_cpu_us_per_file", run["noop_pyfuse3_cpu"] / files * 1e6)
        if "noop_c_small" in run:
            add("noop_c_small_files_s", files / run["noop_c_small"])
            add("noop_c_small_vs_cp", run["cp_small"] / run["noop_c_small"])
    stats = {name: _stats(values, 3 if "_vs_" in name else 1) for name, values in per.items()}
    goals = [
        ("large_vs_cp", 0.4),
        ("large_vs_aws_sample", 25.0),
        ("small_in_enclave_vs_noop", 0.6),
        ("small_in_enclave_vs_cp", 0.05),
    ]
    targets: list[dict[str, object]] = [
        {"name": name, "value": stats[name]["median"], "range": [stats[name]["min"],
         stats[name]["max"]], "goal": f">= {goal}", "met": stats[name]["median"] >= goal}
        for name, goal in goals
    ]  # fmt: skip
    stretch = stats["small_in_enclave_vs_cp"]
    targets.append({"name": "small_in_enclave_vs_cp_stretch", "value": stretch["median"],
                    "goal": ">= 0.1", "met": stretch["median"] >= 0.1})  # fmt: skip
    return {
        "size_bytes": opts.size_b,
        "files": files,
        "file_size": opts.file_size_b,
        "pairs": len(runs),
        **stats,
        "targets": targets,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--file-size", default="4K")
    parser.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument(
        "--pyfuse3-python",
        help="an interpreter with pyfuse3: also time _noop_pyfuse3.py (the library not taken)",
    )
    opts = parser.parse_args()
    opts.size_b, opts.file_size_b = parse_size(opts.size), parse_size(opts.file_size)
    result = figures(opts, measure(opts))
    for name, value in result.items():
        if isinstance(value, dict):
            print(f"{name}: median {value['median']} (range {value['min']}-{value['max']})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
