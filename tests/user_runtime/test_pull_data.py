# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A data bundle is published, indexed, pulled and revoked like an app (issue 22).

Its provider publishes it under their own key; the index records its encryption context with
`kind = data`; a revoked version is refused by pull.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from dist_fixtures import KMS_KEY_ID, FakeKms, new_bucket, owner_key

from owner_tools import s3 as owner_s3
from owner_tools.pack import pack
from owner_tools.publish import publish, read_index, revoke
from package_format.bundle.access import AppGrant, VersionRange
from package_format.bundle.config import BundleConfig
from package_format.bundle.header import read_header
from package_format.index import S3Location, VersionRevokedError
from user_runtime.pull import make_client, pull

NOW = datetime.now(UTC)


@pytest.fixture
def repo(moto_server, aws_env, tmp_path):
    bucket = new_bucket(moto_server.url, f"data-{uuid.uuid4().hex[:12]}")
    return {
        "loc": S3Location(bucket, "hospital"),
        "key": owner_key(tmp_path / "keys", "hospital"),
        "owner": owner_s3.make_client(moto_server.url),
        "user": make_client(moto_server.url),
        "tmp": tmp_path,
    }


def _publish(repo, version: str) -> None:
    folder = repo["tmp"] / f"records-{version}"
    folder.mkdir()
    (folder / "rows.csv").write_text(f"id,score\n1,{version}\n")
    out = repo["tmp"] / f"records-{version}.nb"
    grant = AppGrant("scorer", (bytes(range(32)),), VersionRange("*"))
    config = BundleConfig(name="records", version=version, kind="data", apps=(grant,))
    pack(folder, out, config=config, key_id=KMS_KEY_ID, signing_key=repo["key"].seed,
         kms=FakeKms(), created=1_760_000_000)  # fmt: skip
    publish(repo["owner"], repo["loc"], out, private_key=repo["key"].seed, now=NOW)


def _pull(repo, version=None):
    return pull(
        repo["user"], repo["loc"], "records", version, public_key=repo["key"].public,
        dest_dir=repo["tmp"] / "synced" / "encrypted", state_dir=repo["tmp"] / "state", now=NOW,
    )  # fmt: skip


def test_data_bundle_is_published_pulled_and_revoked_like_an_app(repo) -> None:
    _publish(repo, "1.0.0")
    _publish(repo, "1.1.0")
    index, _ = read_index(repo["owner"], repo["loc"], "records", repo["key"].public)
    assert index is not None
    assert index.versions["1.1.0"].encryption_context["kind"] == "data"
    pulled = _pull(repo)
    assert pulled.version == "1.1.0"
    with pulled.files[0].open("rb") as f:
        assert read_header(f).header.manifest.kind == "data"
    revoke(repo["owner"], repo["loc"], "records", "1.1.0", private_key=repo["key"].seed,
           now=NOW, reason="consent withdrawn")  # fmt: skip
    with pytest.raises(VersionRevokedError, match="consent withdrawn"):
        _pull(repo, "1.1.0")
    assert _pull(repo).version == "1.0.0"
