# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools pack`: manifest, overrides, file walk, atomic output, JSON summary."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _bundle_support import Env, create_kms_key, keygen, make_app, one_error_line, pack

from owner_tools.errors import InputError
from owner_tools.kms.aws import AwsKms
from owner_tools.pack import Overrides, load_config
from owner_tools.pack import pack as pack_library
from owner_tools.verify import inspect_bundle
from package_format.bundle.errors import PayloadSourceError
from package_format.bundle.manifest import EnvPolicy


@pytest.fixture
def env(moto_server, aws_env, tmp_path) -> Env:
    private, public = keygen(tmp_path, "owner")
    return Env(moto_server.url, create_kms_key(moto_server.url), private, public, tmp_path)


def test_pack_json_summary(env, capsys) -> None:
    app = make_app(env.tmp)
    out = env.tmp / "demo.nb"
    capsys.readouterr()
    assert pack(env, app, out, "--json") == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["bundle"] == str(out)
    assert summary["name"] == "demo-app"
    assert summary["version"] == "1.0.0"
    assert summary["encryption_context"] == {"bundle": "demo-app", "version": "1.0.0"}
    assert summary["kms_key_id"] == env.key_id
    assert summary["file_count"] == 3
    assert summary["bundle_size"] == out.stat().st_size
    assert captured.err == ""


def test_pack_file_table_is_sorted_and_excludes_manifest(env) -> None:
    app = make_app(env.tmp)
    (app / "B.txt").write_text("upper")
    (app / "a.txt").write_text("lower")
    assert pack(env, app, env.tmp / "b.nb") == 0
    header, _ = inspect_bundle(env.tmp / "b.nb")
    paths = [f.path for f in header.manifest.files]
    assert paths == ["B.txt", "a.txt", "ml_algorithm.py", "model", "model/weights.bin", "run.sh"]
    modes = {f.path: f.mode for f in header.manifest.files}
    assert modes["run.sh"] == 0o755
    assert modes["a.txt"] == 0o644


def test_overrides_replace_manifest_values(env) -> None:
    app = make_app(env.tmp)
    out = env.tmp / "o.nb"
    assert pack(env, app, out, "--name", "other", "--version", "2.0.0",
                "--entrypoint", "run.sh") == 0  # fmt: skip
    header, _ = inspect_bundle(out)
    assert (header.name, header.version) == ("other", "2.0.0")
    assert [(e.name, e.runtime) for e in header.manifest.entrypoints] == [("run.sh", "exec")]
    assert dict(header.encryption_context) == {"bundle": "other", "version": "2.0.0"}


def test_extra_encryption_context_and_exclude(env) -> None:
    app = make_app(env.tmp)
    (app / "notes").mkdir()
    (app / "notes" / "secret.txt").write_text("x")
    (app / "bundle.toml").write_text(
        'exclude = ["notes"]\n'
        + (app / "bundle.toml").read_text()
        + '\n[encryption_context]\nteam = "ml"\n'
    )
    assert pack(env, app, env.tmp / "c.nb") == 0
    header, _ = inspect_bundle(env.tmp / "c.nb")
    assert dict(header.encryption_context) == {
        "bundle": "demo-app",
        "version": "1.0.0",
        "team": "ml",
    }
    assert not any(f.path.startswith("notes") for f in header.manifest.files)


def test_env_table_is_signed_into_the_manifest(env) -> None:
    app = make_app(env.tmp)
    (app / "bundle.toml").write_text(
        (app / "bundle.toml").read_text()
        + '\n[env]\nallow = ["SEED", "N"]\n[env.defaults]\nN = "5"\n'
    )
    assert pack(env, app, env.tmp / "e.nb") == 0
    header, _ = inspect_bundle(env.tmp / "e.nb")
    assert header.manifest.env == EnvPolicy(("N", "SEED"), (("N", "5"),))


def test_reserved_env_name_is_refused_and_nothing_packed(env, capsys) -> None:
    app = make_app(env.tmp)
    (app / "bundle.toml").write_text(
        (app / "bundle.toml").read_text() + '\n[env]\nallow = ["LD_PRELOAD"]\n'
    )
    capsys.readouterr()
    assert pack(env, app, env.tmp / "e.nb") == 1
    assert "'LD_PRELOAD' is reserved" in one_error_line(capsys)
    assert not (env.tmp / "e.nb").exists()


def test_symlink_leaving_app_folder_refused(env, capsys) -> None:
    app = make_app(env.tmp)
    (env.tmp / "outside.txt").write_text("secret")
    (app / "link.txt").symlink_to(env.tmp / "outside.txt")
    capsys.readouterr()
    assert pack(env, app, env.tmp / "l.nb") == 1
    assert "link.txt: symbolic link leads outside the app folder" in one_error_line(capsys)
    assert not (env.tmp / "l.nb").exists()


def test_symlink_inside_app_folder_packs_target(env) -> None:
    app = make_app(env.tmp)
    (app / "alias.py").symlink_to(app / "ml_algorithm.py")
    assert pack(env, app, env.tmp / "s.nb") == 0
    header, _ = inspect_bundle(env.tmp / "s.nb")
    assert {f.path: f.size for f in header.manifest.files}["alias.py"] == 17


def test_special_file_refused(env, capsys) -> None:
    app = make_app(env.tmp)
    os.mkfifo(app / "pipe")
    capsys.readouterr()
    assert pack(env, app, env.tmp / "f.nb") == 1
    assert "pipe: not a regular file or directory" in one_error_line(capsys)


def test_existing_output_needs_force(env, capsys) -> None:
    app = make_app(env.tmp)
    out = env.tmp / "x.nb"
    out.write_bytes(b"old")
    capsys.readouterr()
    assert pack(env, app, out) == 1
    assert "--force" in one_error_line(capsys)
    assert out.read_bytes() == b"old"
    assert pack(env, app, out, "--force") == 0
    assert out.read_bytes()[:5] == b"NBNDL"


def test_missing_manifest_is_one_line(env, capsys) -> None:
    app = make_app(env.tmp)
    (app / "bundle.toml").unlink()
    capsys.readouterr()
    assert pack(env, app, env.tmp / "m.nb") == 1
    assert "bundle.toml: no such file" in one_error_line(capsys)


def test_unknown_kms_key_leaves_no_output(env, capsys) -> None:
    app = make_app(env.tmp)
    out = env.tmp / "k.nb"
    capsys.readouterr()
    env2 = Env(env.kms_url, "11111111-2222-3333-4444-555555555555", env.private_key,
               env.public_key, env.tmp)  # fmt: skip
    assert pack(env2, app, out) == 1
    assert "not found" in one_error_line(capsys)
    assert sorted(p.name for p in env.tmp.iterdir() if p.name.endswith(".nb")) == []


class _ShrinkingKms:
    """Real KMS; after handing out the key it truncates a file the walk already measured."""

    def __init__(self, inner: AwsKms, victim: Path) -> None:
        self.inner = inner
        self.victim = victim

    def generate_data_key(self, key_id, context):
        result = self.inner.generate_data_key(key_id, context)
        with self.victim.open("r+b") as f:
            f.truncate(100)
        return result

    def decrypt(self, blob, key_id, context):
        return self.inner.decrypt(blob, key_id, context)


def test_failed_pack_leaves_no_partial_output(env) -> None:
    app = make_app(env.tmp)
    big = app / "model" / "big.bin"
    big.write_bytes(os.urandom(64 * 1024))
    outdir = env.tmp / "out"
    outdir.mkdir()
    config = load_config(app / "bundle.toml", Overrides())
    from owner_tools.keys import load_signing_key

    with pytest.raises(PayloadSourceError):
        pack_library(
            app,
            outdir / "p.nb",
            config=config,
            key_id=env.key_id,
            signing_key=load_signing_key(env.private_key),
            kms=_ShrinkingKms(AwsKms(env.kms_url, "us-east-1"), big),
            created=0,
            segment_size=1024,
        )
    assert list(outdir.iterdir()) == []


def test_config_error_is_input_error(tmp_path) -> None:
    (tmp_path / "bundle.toml").write_text('name = "x"\nversion = "nope"\n')
    with pytest.raises(InputError):
        load_config(tmp_path / "bundle.toml", Overrides())


def test_console_script_bad_app_dir_no_traceback(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "owner_tools", "pack", str(tmp_path / "missing"), "-o",
         str(tmp_path / "o.nb"), "--key-id", "k", "--signing-key", str(tmp_path / "none.key")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""


def test_already_expired_manifest_is_refused_not_packed_silently(env, capsys) -> None:
    # Issue 15 item 6: a bundle that expired before it was made is refused by every enclave.
    app = make_app(env.tmp)
    toml = app / "bundle.toml"
    toml.write_text("expires = 2020-01-01\n" + toml.read_text())
    out = env.tmp / "old.nb"
    capsys.readouterr()
    assert pack(env, app, out) == 1
    err = one_error_line(capsys)
    assert "expires 2020-01-01T00:00:00Z has already passed" in err
    assert not out.exists()


def test_missing_output_folder_error_names_the_output_not_a_temporary_file(env, capsys) -> None:
    # Issue 15 item 6: the error named `.x.nb.<pid>.partial`, a name the user never gave.
    app = make_app(env.tmp)
    out = env.tmp / "missing" / "x.nb"
    capsys.readouterr()
    assert pack(env, app, out) == 1
    err = one_error_line(capsys)
    assert err == f"owner-tools: error: {out}: no such file or directory"


def test_environment_requirements_digest_is_signed_into_the_manifest(env) -> None:
    app = make_app(env.tmp)
    req = Path(__file__).resolve().parents[1] / "apps" / "pinned" / "requirements.txt"
    (app / "requirements.txt").write_bytes(req.read_bytes())
    (app / "bundle.toml").write_text(
        (app / "bundle.toml").read_text() + '\n[environment]\nrequirements = "requirements.txt"\n'
    )
    assert pack(env, app, env.tmp / "e.nb") == 0
    header, _ = inspect_bundle(env.tmp / "e.nb")
    assert header.manifest.environment is not None
    assert header.manifest.environment.sha256 == hashlib.sha256(req.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read the app requirements"), ("numpy==2.4.6\n", "must be pinned")],
    ids=["missing", "unhashed"],
)
def test_environment_that_is_not_a_hashed_lock_is_refused(env, capsys, content, expected):
    app = make_app(env.tmp)
    if content is not None:
        (app / "requirements.txt").write_text(content)
    (app / "bundle.toml").write_text(
        (app / "bundle.toml").read_text() + '\n[environment]\nrequirements = "requirements.txt"\n'
    )
    capsys.readouterr()
    assert pack(env, app, env.tmp / "e.nb") == 1
    assert expected in one_error_line(capsys)
    assert not (env.tmp / "e.nb").exists()
