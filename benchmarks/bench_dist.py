# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Distribution throughput against moto over HTTP: publish and pull vs plain boto3 transfers.

publish = SHA-256 while uploading (64 MiB multipart) + signed index; pull = index checks +
ranged download with SHA-256 + fsync + rename. Baselines in the same run: boto3 put (same
multipart part size, no hashing); a plain get_object stream to a file (shown), and the same
with SHA-256 and fsync, the least any verified download does. The issue sets no numeric
target; ours: publish within 1.5x of the plain put, pull within 1.5x of get + sha256 + fsync.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from local_stack.processes import LOCAL_CREDENTIALS, running_moto  # noqa: E402


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


PART = 64 << 20  # the multipart part size of publish and of the baseline put
BUCKET = "bench-dist"


def _write_bundle(path: Path, size: int) -> None:
    chunk = os.urandom(1 << 20)
    with path.open("wb") as fh:
        for _ in range(size >> 20):
            fh.write(chunk)


def _owner_side(moto_url: str, bundle: Path, seed: bytes, public: bytes) -> tuple[float, float]:
    """Seconds for the baseline put, then for publish."""
    from boto3.s3.transfer import TransferConfig

    from owner_tools import s3 as owner_s3
    from owner_tools.publish import BundleIdentity, publish
    from package_format.index import S3Location

    owner = owner_s3.make_client(moto_url)
    owner.create_bucket(Bucket=BUCKET)

    def ident(_path: Path) -> BundleIdentity:
        return BundleIdentity("bench", "1.0.0", "k", {"bundle": "bench"}, public)

    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=1)
    t = time.perf_counter()
    owner.upload_file(str(bundle), BUCKET, "baseline/put", Config=config)
    base_put = time.perf_counter() - t
    t = time.perf_counter()
    publish(
        owner,
        S3Location(BUCKET, "p"),
        bundle,
        private_key=seed,
        now=datetime.now(UTC),
        identify=ident,
        part_size=PART,
    )
    return base_put, time.perf_counter() - t


def _plain_get(user: Any, dest: Path, *, verified: bool) -> float:
    """Seconds to stream the baseline object to `dest` (with SHA-256 and fsync if `verified`)."""
    t = time.perf_counter()
    body = user.get_object(Bucket=BUCKET, Key="baseline/put")["Body"]
    digest = hashlib.sha256()
    with dest.open("wb") as fh:
        while data := body.read(1 << 20):
            fh.write(data)
            if verified:
                digest.update(data)
        if verified:
            fh.flush()
            os.fsync(fh.fileno())
    took = time.perf_counter() - t
    dest.unlink()
    return took


def _user_side(moto_url: str, work: Path, public: bytes) -> tuple[float, float, float]:
    """Seconds for the plain get, the get with SHA-256 and fsync, then for pull."""
    from package_format.index import S3Location
    from user_runtime.pull import make_client, pull

    user = make_client(moto_url)
    base_get = _plain_get(user, work / "baseline.bin", verified=False)
    base_get_verified = _plain_get(user, work / "baseline.bin", verified=True)
    t = time.perf_counter()
    pull(
        user,
        S3Location(BUCKET, "p"),
        "bench",
        None,
        public_key=public,
        dest_dir=work / "dest",
        state_dir=work / "state",
        now=datetime.now(UTC),
    )
    return base_get, base_get_verified, time.perf_counter() - t


def _target(name: str, ratio: float) -> dict[str, object]:
    return {"name": name, "value": round(ratio, 2), "goal": "<= 1.5", "met": ratio <= 1.5}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1G", help="bundle size (default 1G, as issue 7)")
    size = _size(parser.parse_args().size)
    os.environ.update(LOCAL_CREDENTIALS)

    from nacl.signing import SigningKey

    seed = bytes(32)
    public = bytes(SigningKey(seed).verify_key)
    with tempfile.TemporaryDirectory(dir=REPO) as tmp, running_moto() as moto:
        work = Path(tmp)
        bundle = work / "bench-1.0.0.nbundle"
        _write_bundle(bundle, size)
        base_put, t_publish = _owner_side(moto.url, bundle, seed, public)
        base_get, base_get_verified, t_pull = _user_side(moto.url, work, public)

    mb = size / 1e6
    figures: dict[str, object] = {
        "size_bytes": size,
        "publish_s": round(t_publish, 2),
        "publish_MBps": round(mb / t_publish, 1),
        "baseline_put_s": round(base_put, 2),
        "pull_s": round(t_pull, 2),
        "pull_MBps": round(mb / t_pull, 1),
        "baseline_get_s": round(base_get, 2),
        "baseline_get_sha256_fsync_s": round(base_get_verified, 2),
    }
    print(f"publish {t_publish:.2f} s ({mb / t_publish:.0f} MB/s), plain put {base_put:.2f} s")
    print(
        f"pull    {t_pull:.2f} s ({mb / t_pull:.0f} MB/s), plain get {base_get:.2f} s, "
        f"get + sha256 + fsync {base_get_verified:.2f} s"
    )
    figures["targets"] = [
        _target("publish_vs_plain_put", t_publish / base_put),
        _target("pull_vs_get_sha256_fsync", t_pull / base_get_verified),
    ]
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
