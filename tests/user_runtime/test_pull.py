# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""user-runtime pull against moto's S3 over HTTP (specs/distribution.md §5, §7)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from dist_fixtures import make_bundle, new_bucket, owner_key, s3_client

from local_stack.processes import free_port
from owner_tools import s3 as owner_s3
from owner_tools.publish import publish, revoke
from package_format.index import (
    IndexExpiredError,
    IndexKeyMismatchError,
    IndexRollbackError,
    S3Location,
    VersionRevokedError,
)
from user_runtime._cli import main
from user_runtime.pull import DownloadIntegrityError, make_client, pull

NOW = datetime.now(UTC)


class SimulatedKillError(Exception):
    pass


@pytest.fixture
def repo(moto_server, aws_env, tmp_path):
    bucket = new_bucket(moto_server.url, f"pull-{uuid.uuid4().hex[:12]}")
    key = owner_key(tmp_path / "keys")
    loc = S3Location(bucket, "rel")
    return {
        "url": moto_server.url,
        "bucket": bucket,
        "from": f"s3://{bucket}/rel",
        "loc": loc,
        "key": key,
        "owner": owner_s3.make_client(moto_server.url),
        "user": make_client(moto_server.url),
        "tmp": tmp_path,
        "dest": tmp_path / "synced" / "encrypted",
        "state": tmp_path / "state",
    }


def _publish(repo, version="1.0.0", now=NOW, lifetime=timedelta(days=30), **kw):
    bundle = make_bundle(
        repo["tmp"] / f"b-{uuid.uuid4().hex[:6]}", repo["key"], version=version, **kw
    )
    publish(
        repo["owner"], repo["loc"], bundle, private_key=repo["key"].seed, now=now, lifetime=lifetime
    )
    return bundle


def _pull(repo, version=None, **kw):
    return pull(
        repo["user"],
        repo["loc"],
        "demo",
        version,
        public_key=repo["key"].public,
        dest_dir=repo["dest"],
        state_dir=repo["state"],
        now=NOW,
        **kw,
    )


def _cli(repo, spec="demo", *extra):
    return [
        "pull",
        spec,
        "--from",
        repo["from"],
        "--owner-key",
        str(repo["key"].public_path),
        "-d",
        str(repo["dest"]),
        "--state-dir",
        str(repo["state"]),
        "--endpoint-url",
        repo["url"],
        *extra,
    ]


def _index_bytes(repo) -> bytes:
    return (
        s3_client(repo["url"])
        .get_object(Bucket=repo["bucket"], Key="rel/demo/index.json")["Body"]
        .read()
    )


def _put(repo, key, data: bytes) -> None:
    s3_client(repo["url"]).put_object(Bucket=repo["bucket"], Key=key, Body=data)


def _nothing_written(repo) -> bool:
    state_files = list(repo["state"].glob("*.json")) if repo["state"].exists() else []
    return not repo["dest"].exists() and not state_files


def test_publish_then_pull_round_trip(repo, capsys):
    bundle = _publish(repo)
    assert main(_cli(repo)) == 0
    out, err = capsys.readouterr()
    final = repo["dest"] / "demo-1.0.0.nbundle"
    assert out.splitlines() == [str(final)]
    assert err.splitlines() == ["pulled demo@1.0.0 (index version 1)"]
    assert final.read_bytes() == bundle.read_bytes()
    assert sorted(p.name for p in repo["dest"].iterdir()) == ["demo-1.0.0.nbundle"]


def test_pull_again_is_up_to_date(repo, capsys):
    _publish(repo)
    assert main(_cli(repo)) == 0
    capsys.readouterr()
    assert main(_cli(repo)) == 0
    assert capsys.readouterr().err.startswith("already up to date: demo@1.0.0")


def test_pull_current_and_explicit_version(repo):
    old = _publish(repo, "1.0.0")
    new = _publish(repo, "1.1.0")
    result = _pull(repo)
    assert (result.version, result.index_version) == ("1.1.0", 2)
    assert result.files[0].read_bytes() == new.read_bytes()
    result = _pull(repo, "1.0.0")
    assert result.files[0].read_bytes() == old.read_bytes()


def test_rollback_refused(repo, capsys):
    _publish(repo, "1.0.0")
    old_index = _index_bytes(repo)
    _publish(repo, "1.1.0")
    assert _pull(repo).index_version == 2
    _put(repo, "rel/demo/index.json", old_index)  # the older index served again
    with pytest.raises(IndexRollbackError):
        _pull(repo)
    assert main(_cli(repo)) == 1
    assert capsys.readouterr().err.splitlines() == [
        (
            "user-runtime: error: index of demo is version 1, older than version 2 already seen "
            "(rollback refused)"
        )
    ]


def test_rollback_state_is_per_owner_key(repo):
    _publish(repo, "1.0.0")
    _publish(repo, "1.1.0")
    assert _pull(repo).index_version == 2
    other = owner_key(repo["tmp"] / "other")
    other_loc = S3Location(repo["bucket"], "other")
    bundle = make_bundle(repo["tmp"] / "other-bundle", other)
    publish(repo["owner"], other_loc, bundle, private_key=other.seed, now=NOW)
    result = pull(
        repo["user"],
        other_loc,
        "demo",
        None,
        public_key=other.public,
        dest_dir=repo["tmp"] / "other-dest",
        state_dir=repo["state"],
        now=NOW,
    )
    assert result.index_version == 1  # not a rollback: another owner key's own history
    assert len(list(repo["state"].glob("*.json"))) == 2


def test_expired_index_refused(repo, capsys):
    _publish(repo, now=NOW - timedelta(days=40), lifetime=timedelta(days=30))
    with pytest.raises(IndexExpiredError):
        _pull(repo)
    assert main(_cli(repo)) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("user-runtime: error: index of demo (version 1) expired at ")
    assert _nothing_written(repo)


def test_revoked_version_refused_by_pull(repo, capsys):
    _publish(repo, "1.0.0")
    _publish(repo, "1.1.0")
    revoke(
        repo["owner"],
        repo["loc"],
        "demo",
        "1.1.0",
        private_key=repo["key"].seed,
        now=NOW,
        reason="data leak",
    )
    with pytest.raises(VersionRevokedError):
        _pull(repo, "1.1.0")
    assert main(_cli(repo, "demo@1.1.0")) == 1
    assert capsys.readouterr().err.splitlines() == [
        "user-runtime: error: demo@1.1.0 is revoked by its owner: data leak"
    ]
    assert not (repo["dest"] / "demo-1.1.0.nbundle").exists()
    assert _pull(repo).version == "1.0.0"  # current falls back to the newest live version


def test_index_signed_by_other_key_refused(repo, capsys):
    _publish(repo)
    impostor = owner_key(repo["tmp"] / "impostor")
    args = _cli(repo)
    args[args.index("--owner-key") + 1] = str(impostor.public_path)
    assert main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "is signed by key" in err[0]
    assert _nothing_written(repo)
    with pytest.raises(IndexKeyMismatchError):
        pull(
            repo["user"],
            repo["loc"],
            "demo",
            None,
            public_key=impostor.public,
            dest_dir=repo["dest"],
            state_dir=repo["state"],
            now=NOW,
        )


def test_tampered_bundle_refused_before_it_lands(repo, capsys):
    bundle = _publish(repo)
    data = bytearray(bundle.read_bytes())
    data[-1] ^= 1
    _put(repo, "rel/demo/1.0.0/demo-1.0.0.nbundle", bytes(data))
    assert main(_cli(repo)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        (
            f"user-runtime: error: s3://{repo['bucket']}/rel/demo/1.0.0/demo-1.0.0.nbundle: "
            "size or sha-256 does not match the signed index; refused"
        )
    ]
    assert list(repo["dest"].iterdir()) == []  # neither the final name nor a partial
    with pytest.raises(DownloadIntegrityError):
        _pull(repo)


def test_truncated_bundle_in_bucket_refused(repo):
    bundle = _publish(repo)
    _put(repo, "rel/demo/1.0.0/demo-1.0.0.nbundle", bundle.read_bytes()[:-10])
    with pytest.raises(DownloadIntegrityError):
        _pull(repo)
    assert list(repo["dest"].iterdir()) == []


def test_interrupted_download_resumes(repo):
    bundle = _publish(repo, payload_size=3 * 1024 * 1024)
    size = bundle.stat().st_size
    seen: list[int] = []

    def die_after_first_chunk(count: int) -> None:
        seen.append(count)
        raise SimulatedKillError

    with pytest.raises(SimulatedKillError):
        _pull(repo, progress=die_after_first_chunk)
    partial = repo["dest"] / ".demo-1.0.0.partial"
    assert partial.stat().st_size == seen[0] < size
    assert not (repo["dest"] / "demo-1.0.0.nbundle").exists()
    result = _pull(repo)
    assert result.downloaded_bytes == size - seen[0]
    assert result.files[0].read_bytes() == bundle.read_bytes()
    assert not partial.exists()


def test_precreated_partial_resumes(repo):
    bundle = _publish(repo, payload_size=2 * 1024 * 1024)
    repo["dest"].mkdir(parents=True)
    (repo["dest"] / ".demo-1.0.0.partial").write_bytes(bundle.read_bytes()[:1000])
    result = _pull(repo)
    assert result.downloaded_bytes == bundle.stat().st_size - 1000
    assert result.files[0].read_bytes() == bundle.read_bytes()


def test_corrupt_partial_restarts_from_scratch(repo):
    bundle = _publish(repo)
    repo["dest"].mkdir(parents=True)
    (repo["dest"] / ".demo-1.0.0.partial").write_bytes(b"\0" * 100)
    result = _pull(repo)
    assert result.downloaded_bytes == bundle.stat().st_size + bundle.stat().st_size - 100
    assert result.files[0].read_bytes() == bundle.read_bytes()


def test_missing_bucket_one_line_nothing_written(repo, capsys):
    args = _cli(repo)
    args[args.index("--from") + 1] = "s3://no-such-bucket-h6/rel"
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "user-runtime: error: s3://no-such-bucket-h6: bucket does not exist"
    ]
    assert _nothing_written(repo)


def test_no_credentials_one_line_nothing_written(repo, capsys, monkeypatch):
    _publish(repo)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert main(_cli(repo)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"user-runtime: error: s3://{repo['bucket']}/rel/demo/index.json: no AWS credentials found"
    ]
    assert _nothing_written(repo)


def test_unreachable_endpoint_one_line_nothing_written(repo, capsys):
    args = _cli(repo)
    args[args.index("--endpoint-url") + 1] = f"http://127.0.0.1:{free_port()}"
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert "cannot reach the S3 endpoint" in lines[0]
    assert _nothing_written(repo)


def test_malformed_index_one_line_nothing_written(repo, capsys):
    _put(repo, "rel/demo/index.json", b'{"signed": "garbage"')
    assert main(_cli(repo)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    # The signature is checked before the JSON is decoded (issue 15): a malformed index fails
    # at the canonical-form check of the signed envelope.
    assert lines[0].startswith("user-runtime: error: index: not ")
    assert "JSON" in lines[0]
    assert _nothing_written(repo)


def test_missing_index_one_line(repo, capsys):
    assert main(_cli(repo)) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"user-runtime: error: s3://{repo['bucket']}/rel/demo/index.json: no index for demo"
    ]
    assert _nothing_written(repo)


def test_pull_eif_fetches_image_and_pcrs(repo):
    bundle = make_bundle(repo["tmp"], repo["key"])
    eif = repo["tmp"] / "app.eif"
    eif.write_bytes(b"fake eif")
    pcrs = repo["tmp"] / "app.pcrs.json"
    pcrs.write_text('{"PCR0": "00"}')
    publish(
        repo["owner"],
        repo["loc"],
        bundle,
        private_key=repo["key"].seed,
        now=NOW,
        image=eif,
        pcrs=pcrs,
    )
    result = _pull(repo, with_image=True)
    assert [p.name for p in result.files] == [
        "demo-1.0.0.nbundle",
        "demo-1.0.0.eif",
        "demo-1.0.0.pcrs.json",
    ]
    assert result.files[1].read_bytes() == b"fake eif"


def test_console_script_bad_key_file_no_traceback(repo, tmp_path):
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key\n")
    args = _cli(repo)
    args[args.index("--owner-key") + 1] = str(bad)
    proc = subprocess.run(
        [sys.executable, "-m", "user_runtime", *args], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("user-runtime: error: ")


def test_wrong_owner_key_is_named_by_the_same_fingerprint_as_everywhere(repo, capsys) -> None:
    # Issue 15 item 6: one fingerprint format in every message (`SHA256:` + base64, as
    # keygen, inspect and verify print it), not a truncated hex key id here.
    from package_format.bundle.signing import fingerprint, load_public_key

    _publish(repo)
    impostor = owner_key(repo["tmp"] / "impostor")
    args = _cli(repo)
    args[args.index("--owner-key") + 1] = str(impostor.public_path)
    assert main(args) == 1
    err = capsys.readouterr().err
    signer = load_public_key(repo["key"].public_path.read_text())
    mine = load_public_key(impostor.public_path.read_text())
    assert f"signed by key {fingerprint(signer)}, not by the owner key {fingerprint(mine)}" in err


def test_pull_json_is_one_object(repo, capsys):
    bundle = _publish(repo)
    assert main([*_cli(repo), "--json"]) == 0
    out, _ = capsys.readouterr()
    result = json.loads(out)
    assert result["name"] == "demo"
    assert result["version"] == "1.0.0"
    assert result["index_version"] == 1
    assert result["files"] == [str(repo["dest"] / "demo-1.0.0.nbundle")]
    assert result["downloaded_bytes"] == bundle.stat().st_size


def test_pull_json_error_is_an_object(repo, capsys):
    _publish(repo, "1.0.0")
    old_index = _index_bytes(repo)
    _publish(repo, "1.1.0")
    assert _pull(repo).index_version == 2
    _put(repo, "rel/demo/index.json", old_index)
    assert main([*_cli(repo), "--json"]) == 1
    out, err = capsys.readouterr()
    error = json.loads(out)["error"]
    assert error["exit_code"] == 1
    assert error["type"] == "IndexRollbackError"
    assert "rollback refused" in error["message"]
    assert err.startswith("user-runtime: error: index of demo")
