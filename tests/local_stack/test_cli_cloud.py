# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`local-stack env | create-key | create-bucket` against a running stack (real HTTP)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import boto3
import pytest

from local_stack import stack
from local_stack._cli import main


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("cloud") / "state"
    stack.up(directory)
    yield directory
    stack.down(directory)


def _exports(text: str) -> dict[str, str]:
    pairs = {}
    for line in text.splitlines():
        assert line.startswith("export ")
        name, _, value = line[len("export ") :].partition("=")
        pairs[name] = shlex.split(value)[0]
    return pairs


def test_create_key_makes_a_key_the_owner_can_use(running, capsys):
    assert main(["create-key", "--state-dir", str(running), "--description", "mine"]) == 0
    key_id = capsys.readouterr().out.strip()
    env = _exports(_env_text(running, "owner", capsys))
    kms = boto3.client(
        "kms",
        endpoint_url=env["AWS_ENDPOINT_URL_KMS"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "mine"
    assert main(["create-key", "--state-dir", str(running), "--json"]) == 0
    other = json.loads(capsys.readouterr().out)["key_id"]
    assert other != key_id


def test_create_bucket_twice_is_a_no_op(running, capsys):
    assert main(["create-bucket", "releases", "--state-dir", str(running)]) == 0
    assert "created" in capsys.readouterr().err
    assert main(["create-bucket", "releases", "--state-dir", str(running)]) == 0
    assert "exists" in capsys.readouterr().err


def test_bad_bucket_name_is_one_line(running, capsys):
    assert main(["create-bucket", "Bad_Name", "--state-dir", str(running)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "not a bucket name" in err[0]


def _env_text(state: Path, identity: str, capsys) -> str:
    assert main(["env", "--state-dir", str(state), "--as", identity]) == 0
    return capsys.readouterr().out


def test_env_as_host_switches_to_the_enclave_hosts_keys(running, capsys):
    owner = _exports(_env_text(running, "owner", capsys))
    host = _exports(_env_text(running, "host", capsys))
    principals = json.loads((running / "stack.json").read_text())["principals"]
    assert principals[owner["AWS_ACCESS_KEY_ID"]] == stack.OWNER_PRINCIPAL
    assert principals[host["AWS_ACCESS_KEY_ID"]] == stack.ENCLAVE_PRINCIPAL
    assert host["AWS_ENDPOINT_URL_KMS"] == owner["AWS_ENDPOINT_URL_KMS"]
    # The policy's principals, for `owner-tools policy --enclave-principal "$NB_..."`.
    assert owner["NB_OWNER_PRINCIPAL"] == principals[owner["AWS_ACCESS_KEY_ID"]]
    assert owner["NB_ENCLAVE_PRINCIPAL"] == principals[host["AWS_ACCESS_KEY_ID"]]
    assert owner["NB_ACCOUNT"] == stack.LOCAL_ACCOUNT


def test_unknown_identity_is_refused(running, capsys):
    assert main(["env", "--state-dir", str(running), "--as", "root"]) == 1
    assert "unknown identity" in capsys.readouterr().err


def test_commands_without_a_stack_say_so(tmp_path, capsys):
    assert main(["create-key", "--state-dir", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "no local stack runs" in err
    assert "Traceback" not in err
