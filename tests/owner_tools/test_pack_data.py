# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools pack --data`: a data bundle, its kind bound into the encryption context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _bundle_support import Env, create_kms_key, keygen, one_error_line, pack

from owner_tools.verify import inspect_bundle
from package_format.bundle import load_public_key

DATA_TOML = """name = "records"
version = "1.0.0"

[[apps]]
name = "scorer"
signers = ["{key}"]
versions = ">=1.0.0, <2.0.0"

[terms]
stderr = false
max_output_bytes = 4096
"""


@pytest.fixture
def env(moto_server, aws_env, tmp_path) -> Env:
    private, public = keygen(tmp_path, "provider")
    return Env(moto_server.url, create_kms_key(moto_server.url), private, public, tmp_path)


def _folder(env: Env, toml: str) -> Path:
    folder = env.tmp / "records"
    folder.mkdir()
    (folder / "rows.csv").write_text("id,score\n1,0.9\n")
    key = load_public_key(env.public_key.read_text()).hex()
    (folder / "bundle.toml").write_text(toml.format(key=key))
    return folder


def test_pack_data_writes_a_data_bundle(env, capsys) -> None:
    folder = _folder(env, DATA_TOML)
    out = env.tmp / "records.nb"
    capsys.readouterr()
    assert pack(env, folder, out, "--data", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["encryption_context"] == {
        "bundle": "records",
        "kind": "data",
        "version": "1.0.0",
    }
    header, _ = inspect_bundle(out)
    assert header.manifest.kind == "data"
    assert header.manifest.entrypoints == ()
    assert [g.name for g in header.manifest.apps] == ["scorer"]
    assert header.manifest.terms is not None
    assert header.manifest.terms.max_output_bytes == 4096


def test_kind_in_bundle_toml_packs_data_without_the_flag(env) -> None:
    folder = _folder(env, 'kind = "data"\n' + DATA_TOML)
    assert pack(env, folder, env.tmp / "records.nb") == 0
    header, _ = inspect_bundle(env.tmp / "records.nb")
    assert header.manifest.kind == "data"


def test_pack_data_without_apps_is_one_line(env, capsys) -> None:
    folder = _folder(env, 'name = "records"\nversion = "1.0.0"\n')
    capsys.readouterr()
    assert pack(env, folder, env.tmp / "records.nb", "--data") != 0
    assert "[[apps]]" in one_error_line(capsys)
    assert not (env.tmp / "records.nb").exists()
