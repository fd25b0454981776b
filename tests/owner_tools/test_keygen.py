# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools keygen`: key files, modes, refusal to overwrite."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

from owner_tools._cli import main
from owner_tools.keys import load_owner_key, load_signing_key
from package_format.bundle.signing import public_key_of


def test_keygen_writes_private_0600_and_public(tmp_path, capsys) -> None:
    assert main(["keygen", "-o", str(tmp_path / "owner")]) == 0
    captured = capsys.readouterr()
    private, public = tmp_path / "owner.key", tmp_path / "owner.pub"
    assert captured.out.splitlines() == [str(private), str(public)]
    assert captured.err.startswith("owner key SHA256:")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("nitro-bundles ed25519 private key v1\n")
    assert public.read_text().startswith("nitro-bundles ed25519 public key v1\n")
    assert public_key_of(load_signing_key(private)) == load_owner_key(public)


def test_keygen_refuses_to_overwrite(tmp_path, capsys) -> None:
    (tmp_path / "owner.pub").write_text("keep me")
    assert main(["keygen", "-o", str(tmp_path / "owner")]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"owner-tools: error: {tmp_path / 'owner.pub'}: already exists, refusing to overwrite"
    )
    assert (tmp_path / "owner.pub").read_text() == "keep me"
    assert not (tmp_path / "owner.key").exists()


def test_keygen_into_missing_directory_fails_cleanly(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "owner_tools", "keygen", "-o", str(tmp_path / "nope" / "owner")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "no such file or directory" in proc.stderr


def test_world_readable_private_key_refused(tmp_path, capsys) -> None:
    assert main(["keygen", "-o", str(tmp_path / "owner")]) == 0
    (tmp_path / "owner.key").chmod(0o644)
    capsys.readouterr()
    assert main(["pack", str(tmp_path), "-o", str(tmp_path / "x.nb"), "--key-id", "k",
                 "--signing-key", str(tmp_path / "owner.key"), "--name", "a", "--version",
                 "1.0.0", "--entrypoint", "owner.pub"]) == 1  # fmt: skip
    assert "chmod 600" in capsys.readouterr().err


def test_public_key_given_as_signing_key_is_named_not_told_to_chmod(tmp_path, capsys) -> None:
    assert main(["keygen", "-o", str(tmp_path / "owner")]) == 0
    capsys.readouterr()
    assert main(["pack", str(tmp_path), "-o", str(tmp_path / "x.nb"), "--key-id", "k",
                 "--signing-key", str(tmp_path / "owner.pub"), "--name", "a", "--version",
                 "1.0.0", "--entrypoint", "owner.pub"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "chmod" not in err
    assert "owner.pub: a public key; signing needs the private key (owner.key" in err


def test_keygen_json_names_both_files_and_the_fingerprint(tmp_path, capsys) -> None:
    assert main(["keygen", "-o", str(tmp_path / "owner"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["private"] == str(tmp_path / "owner.key")
    assert result["public"] == str(tmp_path / "owner.pub")
    assert result["key"].startswith("SHA256:")
