# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""owner-tools publish against moto's S3 over HTTP (specs/distribution.md §6, §7)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from dist_fixtures import make_bundle, new_bucket, owner_key, s3_client

from local_stack.processes import free_port
from owner_tools import s3
from owner_tools._cli import main
from owner_tools.publish import (
    BundleSignerError,
    VersionConflictError,
    _write_index,
    publish,
    read_index,
)
from package_format.index import IndexKeyMismatchError, S3Location, parse_signed_index

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def repo(moto_server, aws_env, tmp_path):
    bucket = new_bucket(moto_server.url, f"pub-{uuid.uuid4().hex[:12]}")
    key = owner_key(tmp_path / "keys")
    return {
        "url": moto_server.url,
        "bucket": bucket,
        "to": f"s3://{bucket}/releases",
        "loc": S3Location(bucket, "releases"),
        "key": key,
        "client": s3.make_client(moto_server.url),
        "tmp": tmp_path,
    }


def _cli(repo, *args: str) -> list[str]:
    return [
        "publish",
        *args,
        "--to",
        repo["to"],
        "--key",
        str(repo["key"].private_path),
        "--endpoint-url",
        repo["url"],
    ]


def _keys(repo) -> list[str]:
    listed = s3_client(repo["url"]).list_objects_v2(Bucket=repo["bucket"])
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_publish_uploads_bundle_and_signed_index(repo, capsys):
    bundle = make_bundle(repo["tmp"], repo["key"])
    assert main(_cli(repo, str(bundle))) == 0
    out, err = capsys.readouterr()
    key = "releases/demo/1.0.0/demo-1.0.0.nbundle"
    assert out.splitlines() == [f"s3://{repo['bucket']}/{key}"]
    assert "published demo@1.0.0 (index version 1" in err
    assert _keys(repo) == [key, "releases/demo/index.json"]
    body = s3_client(repo["url"]).get_object(Bucket=repo["bucket"], Key=key)["Body"].read()
    assert body == bundle.read_bytes()
    index, _ = read_index(repo["client"], repo["loc"], "demo", repo["key"].public)
    assert index is not None
    assert index.current == "1.0.0"
    assert index.versions["1.0.0"].encryption_context == {"bundle": "demo", "version": "1.0.0"}


def test_republish_identical_bytes_is_noop(repo, capsys):
    bundle = make_bundle(repo["tmp"], repo["key"])
    assert main(_cli(repo, str(bundle))) == 0
    index_before = (
        s3_client(repo["url"])
        .get_object(Bucket=repo["bucket"], Key="releases/demo/index.json")["Body"]
        .read()
    )
    capsys.readouterr()
    assert main(_cli(repo, str(bundle))) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "already published with these bytes" in err
    index_after = (
        s3_client(repo["url"])
        .get_object(Bucket=repo["bucket"], Key="releases/demo/index.json")["Body"]
        .read()
    )
    assert index_after == index_before


def test_different_bytes_under_existing_version_refused(repo, capsys):
    first = make_bundle(repo["tmp"] / "a", repo["key"])
    second = make_bundle(repo["tmp"] / "b", repo["key"], payload=b"print('changed')\n")
    assert main(_cli(repo, str(first))) == 0
    capsys.readouterr()
    assert main(_cli(repo, str(second))) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "owner-tools: error: demo@1.0.0 is already published with different bytes; bump the version"
    ]
    stored = (
        s3_client(repo["url"])
        .get_object(Bucket=repo["bucket"], Key="releases/demo/1.0.0/demo-1.0.0.nbundle")["Body"]
        .read()
    )
    assert stored == first.read_bytes()
    with pytest.raises(VersionConflictError):
        publish(repo["client"], repo["loc"], second, private_key=repo["key"].seed, now=NOW)


def test_new_version_bumps_index_version_and_current(repo):
    for ver in ("1.0.0", "1.1.0"):
        bundle = make_bundle(repo["tmp"], repo["key"], version=ver)
        result = publish(repo["client"], repo["loc"], bundle, private_key=repo["key"].seed, now=NOW)
        assert result.changed
    index, _ = read_index(repo["client"], repo["loc"], "demo", repo["key"].public)
    assert index is not None
    assert (index.version, index.current, sorted(index.versions)) == (
        2,
        "1.1.0",
        ["1.0.0", "1.1.0"],
    )


def test_multipart_upload_of_large_bundle(repo):
    bundle = make_bundle(repo["tmp"], repo["key"], payload_size=12 * 1024 * 1024)
    seen: list[int] = []
    result = publish(
        repo["client"],
        repo["loc"],
        bundle,
        private_key=repo["key"].seed,
        now=NOW,
        part_size=5 * 1024 * 1024,
        progress=seen.append,
    )
    assert result.changed
    assert sum(seen) == bundle.stat().st_size
    head = s3_client(repo["url"]).head_object(
        Bucket=repo["bucket"], Key="releases/demo/1.0.0/demo-1.0.0.nbundle"
    )
    assert head["ETag"].endswith('-3"')  # three parts
    assert head["ContentLength"] == bundle.stat().st_size


def test_bundle_signed_by_other_key_refused(repo):
    other = owner_key(repo["tmp"] / "other")
    bundle = make_bundle(repo["tmp"], other)
    with pytest.raises(BundleSignerError):
        publish(repo["client"], repo["loc"], bundle, private_key=repo["key"].seed, now=NOW)
    assert _keys(repo) == []


def test_existing_index_of_other_owner_refused(repo):
    other = owner_key(repo["tmp"] / "other")
    publish(
        repo["client"],
        repo["loc"],
        make_bundle(repo["tmp"] / "o", other),
        private_key=other.seed,
        now=NOW,
    )
    mine = make_bundle(repo["tmp"] / "m", repo["key"], version="2.0.0")
    with pytest.raises(IndexKeyMismatchError):
        publish(repo["client"], repo["loc"], mine, private_key=repo["key"].seed, now=NOW)


def test_concurrent_index_update_detected(repo):
    bundle = make_bundle(repo["tmp"], repo["key"])
    publish(repo["client"], repo["loc"], bundle, private_key=repo["key"].seed, now=NOW)
    index, etag = read_index(repo["client"], repo["loc"], "demo", repo["key"].public)
    assert index is not None
    assert etag
    publish(
        repo["client"],
        repo["loc"],
        make_bundle(repo["tmp"], repo["key"], version="1.0.1"),
        private_key=repo["key"].seed,
        now=NOW,
    )
    with pytest.raises(s3.ConcurrentUpdateError):
        _write_index(repo["client"], repo["loc"], index, repo["key"].seed, etag)
    stored = (
        s3_client(repo["url"])
        .get_object(Bucket=repo["bucket"], Key="releases/demo/index.json")["Body"]
        .read()
    )
    assert "1.0.1" in parse_signed_index(stored, repo["key"].public).versions


def test_publish_with_image_uploads_eif_and_pcrs(repo, capsys):
    bundle = make_bundle(repo["tmp"], repo["key"])
    eif = repo["tmp"] / "app.eif"
    eif.write_bytes(b"EIF fake image bytes")
    (repo["tmp"] / "app.eif.pcrs.json").write_text('{"PCR0": "00"}')
    assert main(_cli(repo, str(bundle), "--eif", str(eif))) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"s3://{repo['bucket']}/releases/demo/1.0.0/image.eif"
    assert "releases/demo/1.0.0/image.pcrs.json" in _keys(repo)


def test_missing_bucket_one_line_nothing_written(repo, capsys):
    bundle = make_bundle(repo["tmp"], repo["key"])
    args = _cli(repo, str(bundle))
    args[args.index("--to") + 1] = "s3://no-such-bucket-h6/x"
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["owner-tools: error: s3://no-such-bucket-h6: bucket does not exist"]


def test_no_credentials_one_line(repo, capsys, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    bundle = make_bundle(repo["tmp"], repo["key"])
    assert main(_cli(repo, str(bundle))) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"owner-tools: error: s3://{repo['bucket']}: no AWS credentials found"
    ]


def test_unreachable_endpoint_one_line(repo, capsys):
    bundle = make_bundle(repo["tmp"], repo["key"])
    args = _cli(repo, str(bundle))
    args[args.index("--endpoint-url") + 1] = f"http://127.0.0.1:{free_port()}"
    assert main(args) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == ""
    assert len(lines) == 1
    assert lines[0].startswith(
        f"owner-tools: error: s3://{repo['bucket']}: cannot reach the S3 endpoint"
    )
    assert _keys(repo) == []


def test_bad_url_is_usage_error(repo, capsys):
    bundle = make_bundle(repo["tmp"], repo["key"])
    args = _cli(repo, str(bundle))
    args[args.index("--to") + 1] = "https://example.com/x"
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("owner-tools: usage: ")


def test_console_script_not_a_bundle_no_traceback(repo, tmp_path):
    junk = tmp_path / "junk.nbundle"
    junk.write_bytes(b"not a bundle at all")
    proc = subprocess.run(
        [sys.executable, "-m", "owner_tools", *_cli(repo, str(junk))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == ["owner-tools: error: bundle: not a bundle (bad magic)"]
    assert _keys(repo) == []


def test_missing_pcrs_file_refused_before_upload(repo, capsys):
    bundle = make_bundle(repo["tmp"], repo["key"])
    eif = repo["tmp"] / "app.eif"
    eif.write_bytes(b"EIF fake image bytes")
    assert main(_cli(repo, str(bundle), "--eif", str(eif))) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"owner-tools: error: {eif}.pcrs.json: no such file"
    ]
    assert _keys(repo) == []


def test_unsafe_bundle_file_name_refused_before_upload(repo, capsys):
    bundle = make_bundle(repo["tmp"], repo["key"])
    odd = bundle.with_name("my bundle.nbundle")
    bundle.rename(odd)
    assert main(_cli(repo, str(odd))) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "a published file name must match" in err[0]
    assert _keys(repo) == []


def test_publish_json_is_one_object_and_no_progress(repo, capsys, monkeypatch):
    bundle = make_bundle(repo["tmp"], repo["key"])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a person at a terminal...
    assert main([*_cli(repo, str(bundle)), "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)  # ...asked for JSON: stdout is one object, stderr no bar
    assert result["name"] == "demo"
    assert result["version"] == "1.0.0"
    assert result["changed"] is True
    assert result["index_version"] == 1
    assert result["urls"] == [f"s3://{repo['bucket']}/releases/demo/1.0.0/demo-1.0.0.nbundle"]
    assert result["policy_key_id"] is None
    assert "uploading" not in err
