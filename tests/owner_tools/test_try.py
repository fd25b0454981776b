# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools try`: a bundle on its image, with the output the image would withhold."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "enclave"))
from test_runner_kit import OWNER_SEED, make_bundle

from owner_tools._cli import main
from package_format.bundle import dump_public_key, public_key_of
from package_format.bundle.manifest import EnvPolicy

REPO = Path(__file__).resolve().parents[2]
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"
CRASH = b"import os\ndef owner_function():\n    raise KeyError(os.environ['N'])\nowner_function()\n"
WRITE = b"import sys\nprint('ok', sys.argv[1:])\nopen('/output/r.txt', 'w').write('r')\n"


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("image")
    pub = tmp / "owner.pub"
    pub.write_text(dump_public_key(public_key_of(OWNER_SEED)))
    out = tmp / "img.eif"
    argv = ["build-eif", "-o", str(out), "--blobs", str(BLOBS), "--owner-key", str(pub)]
    assert main([*argv, "--name", "try-image"]) == 0
    return out


def _app(tmp_path: Path, script: bytes, **kw) -> tuple[Path, Path]:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_bytes(script)
    bundle = tmp_path / "app.nb"
    bundle.write_bytes(make_bundle({"main.py": script}, stderr=False, **kw))
    return app, bundle


def _try(image: Path, app: Path, bundle: Path, *extra: str) -> int:
    return main(["try", str(bundle), "--eif", str(image), "--app", str(app), *extra])


def test_try_shows_the_traceback_the_image_withholds(image, tmp_path, capsys) -> None:
    app, bundle = _app(tmp_path, CRASH, env=EnvPolicy(("N",), (("N", "seven"),)))
    assert _try(image, app, bundle, "-s", "main.py") == 1
    err = capsys.readouterr().err
    assert "owner_function" in err
    assert "KeyError: 'seven'" in err


def test_try_runs_with_args_env_and_writes_outputs(image, tmp_path, capsys) -> None:
    app, bundle = _app(tmp_path, WRITE)
    out = tmp_path / "out"
    rc = _try(
        image, app, bundle, "-s", "main.py", "-a", "key=/dataset/x https://a//b", "-o", str(out)
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert captured.out == "ok ['key=/dataset/x', 'https://a//b']\n"
    assert captured.err == f"owner-tools: output: output/r.txt (in {out})\n"
    assert (out / "r.txt").read_text() == "r"


def test_try_env_name_the_manifest_does_not_allow_is_one_line(image, tmp_path, capsys) -> None:
    app, bundle = _app(tmp_path, CRASH, env=EnvPolicy(("N",)))
    assert _try(image, app, bundle, "-s", "main.py", "--env", "OTHER=1") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'OTHER' is not allowed by the bundle's manifest (BAD_RUN_ARGUMENT)" in err


def test_try_bundle_signed_by_a_key_the_image_does_not_pin_is_one_line(
    image, tmp_path, capsys
) -> None:
    app, bundle = _app(tmp_path, WRITE, seed=bytes(32))
    assert _try(image, app, bundle, "-s", "main.py") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "UNTRUSTED_SIGNER" in err


def test_try_app_folder_that_is_not_the_packed_one_is_one_line(image, tmp_path, capsys) -> None:
    app, bundle = _app(tmp_path, WRITE)
    (app / "main.py").write_bytes(WRITE + b"# edited after packing\n")
    assert _try(image, app, bundle, "-s", "main.py") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "main.py is not the packed file (size differs): repack" in err


@pytest.fixture(scope="module")
def env_image(tmp_path_factory) -> tuple[Path, str]:
    """An image whose rootfs holds one app environment (a toy tree: no server check)."""
    tmp = tmp_path_factory.mktemp("env-image")
    requirements = (REPO / "tests" / "apps" / "pinned" / "requirements.txt").read_bytes()
    digest = hashlib.sha256(requirements).hexdigest()
    env = tmp / "rootfs" / "opt" / "nitro-bundles" / "app" / digest[:16]
    (env / "bin").mkdir(parents=True)
    (env / "requirements.txt").write_bytes(requirements)
    (env / "bin" / "python3").write_text("#!/bin/sh\n")
    (env / "bin" / "python3").chmod(0o755)
    pub = tmp / "owner.pub"
    pub.write_text(dump_public_key(public_key_of(OWNER_SEED)))
    out = tmp / "env.eif"
    argv = ["build-eif", "-o", str(out), "--blobs", str(BLOBS), "--owner-key", str(pub)]
    assert main([*argv, "--rootfs", str(tmp / "rootfs"), "--no-server-check"]) == 0
    return out, digest


def test_try_bundle_needing_an_environment_the_image_lacks_is_one_line(
    env_image, tmp_path, capsys
) -> None:
    image, _ = env_image
    other = hashlib.sha256(b"another lock").hexdigest()
    app, bundle = _app(tmp_path, WRITE, environment=other)
    assert _try(image, app, bundle, "-s", "main.py") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "ENVIRONMENT_MISSING" in err
    assert other in err


def test_try_bundle_naming_the_image_environment_runs(env_image, tmp_path, capsys) -> None:
    image, digest = env_image
    app, bundle = _app(tmp_path, WRITE, environment=digest)
    rc = _try(image, app, bundle, "-s", "main.py", "-o", str(tmp_path / "out"))
    assert rc == 0, capsys.readouterr().err
    assert "ok []" in capsys.readouterr().out
