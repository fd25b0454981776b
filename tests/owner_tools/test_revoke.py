# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""owner-tools revoke against moto's S3 over HTTP (specs/distribution.md §6.2, §7)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from dist_fixtures import make_bundle, new_bucket, owner_key

from owner_tools import s3
from owner_tools._cli import main
from owner_tools.errors import InputError
from owner_tools.publish import publish, read_index, revoke
from package_format.index import S3Location, VersionNotFoundError

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def repo(moto_server, aws_env, tmp_path):
    bucket = new_bucket(moto_server.url, f"rev-{uuid.uuid4().hex[:12]}")
    key = owner_key(tmp_path / "keys")
    repo = {
        "url": moto_server.url,
        "to": f"s3://{bucket}",
        "loc": S3Location(bucket, ""),
        "key": key,
        "client": s3.make_client(moto_server.url),
        "tmp": tmp_path,
    }
    for ver in ("1.0.0", "1.1.0"):
        bundle = make_bundle(tmp_path / ver, key, version=ver)
        publish(repo["client"], repo["loc"], bundle, private_key=key.seed, now=NOW)
    return repo


def _cli(repo, *args: str) -> list[str]:
    return [
        "revoke",
        *args,
        "--to",
        repo["to"],
        "--key",
        str(repo["key"].private_path),
        "--endpoint-url",
        repo["url"],
    ]


def _index(repo):
    index, _ = read_index(repo["client"], repo["loc"], "demo", repo["key"].public)
    assert index is not None
    return index


def test_revoke_marks_version_and_moves_current(repo, capsys):
    assert _index(repo).current == "1.1.0"
    assert main(_cli(repo, "demo", "1.1.0", "--reason", "leaked weights")) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("revoked demo@1.1.0 (index version 3)\n", "")
    index = _index(repo)
    assert index.version == 3
    assert index.current == "1.0.0"
    revoked = index.versions["1.1.0"].revoked
    assert revoked is not None
    assert revoked.reason == "leaked weights"


def test_revoke_twice_is_noop(repo, capsys):
    assert main(_cli(repo, "demo", "1.0.0")) == 0
    capsys.readouterr()
    assert main(_cli(repo, "demo", "1.0.0")) == 0
    assert capsys.readouterr().out == "demo@1.0.0 was already revoked (index version 3)\n"
    assert _index(repo).version == 3


def test_revoked_version_cannot_be_republished(repo):
    from owner_tools.publish import RevokedVersionError

    revoke(
        repo["client"],
        repo["loc"],
        "demo",
        "1.0.0",
        private_key=repo["key"].seed,
        now=NOW,
        reason="bad",
    )
    again = make_bundle(repo["tmp"] / "again", repo["key"], version="1.0.0")
    with pytest.raises(RevokedVersionError):
        publish(repo["client"], repo["loc"], again, private_key=repo["key"].seed, now=NOW)


def test_revoke_unknown_version_one_line(repo, capsys):
    assert main(_cli(repo, "demo", "9.9.9")) == 1
    assert capsys.readouterr().err.splitlines() == [
        "owner-tools: error: index of demo: no version 9.9.9"
    ]
    with pytest.raises(VersionNotFoundError):
        revoke(
            repo["client"],
            repo["loc"],
            "demo",
            "9.9.9",
            private_key=repo["key"].seed,
            now=NOW,
            reason="x",
        )


def test_revoke_unknown_name_one_line(repo, capsys):
    assert main(_cli(repo, "nothing", "1.0.0")) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"owner-tools: error: {repo['to']}/nothing/index.json: no index for nothing"]


def test_revoke_with_other_key_refused(repo, capsys):
    other = owner_key(repo["tmp"] / "other")
    args = _cli(repo, "demo", "1.0.0")
    args[args.index("--key") + 1] = str(other.private_path)
    assert main(args) == 1
    assert "is signed by key" in capsys.readouterr().err
    assert _index(repo).version == 2


def test_multiline_reason_refused(repo):
    with pytest.raises(InputError):
        revoke(
            repo["client"],
            repo["loc"],
            "demo",
            "1.0.0",
            private_key=repo["key"].seed,
            now=NOW,
            reason="a\nb",
        )
