# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 7, must show 1: a 1 GiB bundle published (multipart) and pulled (with a resume)."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dist_fixtures import make_bundle, new_bucket, owner_key, s3_client

from owner_tools import s3 as owner_s3
from owner_tools.publish import publish
from package_format.index import S3Location
from user_runtime.pull import make_client, pull

GIB = 1024 * 1024 * 1024
PART = 64 * 1024 * 1024


class SimulatedKillError(Exception):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.slow
def test_one_gib_round_trip_multipart_with_resume(moto_server, aws_env, tmp_path):
    now = datetime.now(UTC)
    bucket = new_bucket(moto_server.url, f"big-{uuid.uuid4().hex[:12]}")
    loc = S3Location(bucket, "big")
    key = owner_key(tmp_path / "keys")
    bundle = make_bundle(tmp_path / "owner", key, name="big", payload_size=GIB)
    shutil.rmtree(tmp_path / "owner" / "app-big-1.0.0")  # keep disk use down
    size = bundle.stat().st_size
    assert size > GIB

    uploaded: list[int] = []
    result = publish(
        owner_s3.make_client(moto_server.url),
        loc,
        bundle,
        private_key=key.seed,
        now=now,
        part_size=PART,
        progress=uploaded.append,
    )
    assert result.changed
    parts = -(-size // PART)
    assert len(uploaded) == parts
    head = s3_client(moto_server.url).head_object(Bucket=bucket, Key=f"big/big/1.0.0/{bundle.name}")
    assert head["ETag"].endswith(f'-{parts}"')

    dest = tmp_path / "user"
    fetched = [0]

    def kill_after_300_mib(count: int) -> None:
        fetched[0] += count
        if fetched[0] >= 300 * 1024 * 1024:
            raise SimulatedKillError

    client = make_client(moto_server.url)
    with pytest.raises(SimulatedKillError):
        pull(
            client,
            loc,
            "big",
            None,
            public_key=key.public,
            dest_dir=dest,
            state_dir=tmp_path / "state",
            now=now,
            progress=kill_after_300_mib,
        )
    partial = dest / ".big-1.0.0.partial"
    assert partial.stat().st_size == fetched[0]
    assert not (dest / bundle.name).exists()

    result2 = pull(
        client,
        loc,
        "big",
        None,
        public_key=key.public,
        dest_dir=dest,
        state_dir=tmp_path / "state",
        now=now,
    )
    assert result2.downloaded_bytes == size - fetched[0]
    assert not partial.exists()
    assert _sha256(result2.files[0]) == _sha256(bundle)
