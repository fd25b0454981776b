# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The first run of a small app with a large data bundle (issue 22), for `bench_run.py`.

A provider key (`owner-tools policy --data`, bound to the image's PCR0) wraps the data
bundle's key; the app's `[[data]]` accepts it at `/data/big-data`. Measured in process with
the enclave's own code, as the runner does it (enclave.runner.data_bundles): the data bundle opened
from a read-only mapping (as the server reads a large session file), its signature verified
against the app's listed signers, both sides' rules checked, its key released through
attestation (the KMS front), its payload decrypted (streamed) into a fresh private directory
under the enclave's work dir. Beside it, in the same run: raw AES-256-GCM over the data
bundle's own sealed segments, and the peak anonymous memory of this process during the
decrypt beyond what it held before (the plaintext itself is in the tmpfs, not counted).
Then the whole run through the real `Runner` (process, view, mounts, wipe) is timed too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

NAME = "big-data"
APP_NAME = "data-app"


def trim() -> None:
    """Give freed heap pages back (glibc `malloc_trim`), so RssAnon shows live memory only.

    Earlier measurements in this process freed their buffers; kept in malloc's arenas they
    would hide the decrypt's own buffers from the peak.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss_anon() -> int:
    """This process's anonymous resident memory in bytes (`RssAnon` of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakSampler:
    """Samples `rss_anon()` every 5 ms in a thread; `peak` is the highest seen."""

    def __init__(self) -> None:
        self.peak = rss_anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_anon())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon())


def prepare(work: Path, world: dict[str, Any], size: int, owner: Callable[..., None]) -> Path:
    """Pack the small app (with `[[data]]`) and the `size`-byte data bundle into `work`/session.

    Returns the session directory holding `encrypted/app.nb` and `encrypted/big.nb`.
    """
    import boto3

    from package_format.bundle import load_public_key

    stack, info = world["stack"], world["info"]
    kms = boto3.session.Session().client("kms", region_name=info.region, endpoint_url=info.kms.url)
    keys = {}
    for name, extra in ((APP_NAME, ()), (NAME, ("--data",))):
        keys[name] = kms.create_key()["KeyMetadata"]["KeyId"]
        policy = work / f"{name}.policy.json"
        owner(
            *("policy", "--eif", str(world["eif"]), "--bundle-name", name, *extra),
            *("--account", stack.LOCAL_ACCOUNT, "--enclave-principal", stack.ENCLAVE_PRINCIPAL),
            *("--admin-principal", stack.OWNER_PRINCIPAL, "--owner-principal"),
            *(stack.OWNER_PRINCIPAL, "-o", str(policy)),
        )
        kms.put_key_policy(KeyId=keys[name], PolicyName="default", Policy=policy.read_text())
    signer = load_public_key((work / "owner.pub").read_text()).hex()
    app, data = work / "data-app", work / "data-folder"
    app.mkdir()
    data.mkdir()
    (app / "main.py").write_text(f"import os\nprint(os.path.getsize('/data/{NAME}/weights.bin'))\n")
    (app / "bundle.toml").write_text(
        f'name = "{APP_NAME}"\nversion = "1.0.0"\n[[entrypoints]]\npath = "main.py"\n'
        f'[[data]]\nname = "{NAME}"\nsigners = ["{signer}"]\n'
    )
    (data / "bundle.toml").write_text(
        f'name = "{NAME}"\nversion = "1.0.0"\n[[apps]]\nname = "{APP_NAME}"\n'
        f'signers = ["{signer}"]\n'
    )
    with (data / "weights.bin").open("wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    session = work / "data-session"
    (session / "encrypted").mkdir(parents=True)
    for folder, out, name, extra in (
        (app, "app.nb", APP_NAME, ()),
        (data, "big.nb", NAME, ("--data",)),
    ):
        owner(
            *("pack", str(folder), "-o", str(session / "encrypted" / out), "--key-id", keys[name]),
            *("--signing-key", str(work / "owner.key"), "--kms-endpoint", info.kms.url),
            *("--region", info.region, *extra),
        )
    (data / "weights.bin").unlink()
    with (session / "encrypted" / "big.nb").open("rb") as f:
        os.fsync(f.fileno())
    return session


class MappedSession:
    """The runner's `SessionFiles` over a directory, large files mapped as the server maps them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("dataset", "model", "output"):
            (root / name).mkdir(exist_ok=True)

    def open_file(self, path: str) -> Any:
        from enclave.mapped_source import MappedReader

        return MappedReader.of_path(self.root / path)

    def export_dir(self, name: str, dest: Path) -> None:
        del name, dest  # nothing to export: the app reads only its data

    def clear_dir(self, name: str) -> None:
        del name

    def import_dir(self, src: Path, name: str) -> list[str]:
        del src, name
        return []


def data_phases(image: Any, release: Any, session: Path, base: Path) -> dict[str, float]:
    """Open + check, key release and decrypt of the data bundle, with the enclave's own code."""
    from enclave.plaintext import PrivateDir
    from enclave.runner.api import RunRequest
    from enclave.runner.bundle import open_bundle
    from enclave.runner.data_checks import DataPolicy, open_data_run
    from enclave.runner.runner import key_while_preparing

    files = MappedSession(session)
    with files.open_file("encrypted/app.nb") as stream:
        app = open_bundle(stream, image.owner_keys).facts
    request = RunRequest("encrypted/app.nb", "main.py", data=("encrypted/big.nb",))
    policy = DataPolicy(open_bundle, datetime.now(UTC), image.min_versions, base)
    key_at: list[float] = []

    def get_key(facts: Any) -> bytes:
        key = bytes(release(facts.kms_key_id, facts.wrapped_key, facts.encryption_context))
        key_at.append(time.perf_counter())
        return key

    import gc

    gc.collect()
    trim()
    before = rss_anon()
    t0 = time.perf_counter()
    with open_data_run(request, app, files, policy) as run, PrivateDir(base) as work:
        t1 = time.perf_counter()
        with PeakSampler() as peak:
            run.extract(work.path, get_key, key_while_preparing)
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    return {
        "open_and_check": t1 - t0,
        "key_release": key_at[0] - t1,
        "decrypt": t2 - key_at[0],
        "first_run": t2 - t0,
        "wipe": t3 - t2,
        "peak_anon_beyond": float(max(0, peak.peak - before)),
    }


def whole_run(image: Any, release: Any, session: Path, base: Path) -> float:
    """The whole first run through the real Runner: checks, keys, decrypt, view, entrypoint."""
    from enclave.runner.api import RunRequest
    from enclave.runner.bundle import open_bundle
    from enclave.runner.runner import Runner, RunnerConfig

    class Sink:
        def stdout(self, data: bytes) -> None:
            del data

        def stderr(self, data: bytes) -> None:
            del data

    # The view's mounts need a directory of this mount namespace (not one reached through
    # /proc/PID/root): a private directory under `base`'s file system type, here /dev/shm.
    del base
    own = Path(tempfile.mkdtemp(prefix="bench-data-", dir="/dev/shm"))
    try:
        config = RunnerConfig(image.owner_keys, own, image.min_versions)
        runner = Runner(config, open_bundle, release)
        request = RunRequest("encrypted/app.nb", "main.py", data=("encrypted/big.nb",))
        start = time.perf_counter()
        result = runner.run(request, MappedSession(session), Sink())
        elapsed = time.perf_counter() - start
    finally:
        shutil.rmtree(own, ignore_errors=True)
    if result.exit_status != 0:
        msg = f"the data app failed with status {result.exit_status}"
        raise RuntimeError(msg)
    return elapsed


def measure(  # noqa: PLR0917 - the enclave's parts, as bench_run has them
    image: Any,
    release: Any,
    session: Path,
    base: Path,
    repeat: int,
    raw_same_bytes: Callable[[Path, Any], float],
) -> dict[str, Any]:
    """Alternate --big-repeat first runs and raw AES-GCM over the data bundle's bytes."""
    big = session / "encrypted" / "big.nb"
    data_phases(image, release, session, base)  # untimed: first touch of guest memory
    trials, raw = [], []
    for _ in range(repeat):
        trials.append(data_phases(image, release, session, base))
        raw.append(raw_same_bytes(big, release))
    phases = {k: statistics.median(t[k] for t in trials) for k in trials[0]}
    same = statistics.median(raw)
    run = whole_run(image, release, session, base)
    return {
        "data_open_and_check_s": round(phases["open_and_check"], 4),
        "data_key_release_s": round(phases["key_release"], 4),
        "data_decrypt_s": round(phases["decrypt"], 4),
        "data_first_run_s": round(phases["first_run"], 4),
        "data_wipe_s": round(phases["wipe"], 4),
        "data_raw_aes_gcm_same_bytes_s": round(same, 4),
        "data_ratio": round(same / phases["first_run"], 3),
        "data_peak_memory_beyond_plaintext_mib": round(phases["peak_anon_beyond"] / (1 << 20), 1),
        "data_whole_run_s": round(run, 3),
    }


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's two targets for the data bundle's first run."""
    return [
        {
            "name": "data bundle first run / raw AES-256-GCM over its bytes",
            "value": result["data_ratio"],
            "goal": ">= 0.5",
            "met": result["data_ratio"] >= 0.5,
        },
        {
            "name": "peak enclave memory for the data beyond its plaintext (MiB)",
            "value": result["data_peak_memory_beyond_plaintext_mib"],
            "goal": "< 64",
            "met": result["data_peak_memory_beyond_plaintext_mib"] < 64,
        },
    ]
