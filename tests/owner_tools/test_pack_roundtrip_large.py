# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Round trip at scale (issue 2, item 2): 1,000 small files and one 1 GiB file.

Pack and verify run as real console-script processes; each file's SHA-256 is
compared after decryption (hashed in memory, never written); the output folder
and TMPDIR hold nothing but the bundle; peak RSS of pack and verify stays flat.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _bundle_support import create_kms_key, keygen

from owner_tools.keys import load_owner_key
from owner_tools.kms.aws import AwsKms
from package_format.bundle.reader import BundleReader

BIG = 1 << 30
SMALL_FILES = 1000
RSS_LIMIT_KIB = 100 * 1024
# Runs argv as a child and prints the child's peak RSS (KiB) as the last line.
MEASURE = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc)\n"
)


def build_app(app: Path) -> dict[str, str]:
    digests = {}
    rnd = hashlib.sha256(b"small files").digest()
    for i in range(SMALL_FILES):
        rel = f"data/part{i // 100:02d}/sample{i:04d}.csv"
        body = (rnd * (1 + i % 40))[: 50 + (i * 37) % 1200] + str(i).encode()
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_bytes(body)
        digests[rel] = hashlib.sha256(body).hexdigest()
    h = hashlib.sha256()
    with (app / "model.h5").open("wb") as f:
        for _ in range(BIG >> 20):
            block = os.urandom(1 << 20)
            h.update(block)
            f.write(block)
    digests["model.h5"] = h.hexdigest()
    (app / "ml_algorithm.py").write_text("print('ok')\n")
    digests["ml_algorithm.py"] = hashlib.sha256(b"print('ok')\n").hexdigest()
    (app / "bundle.toml").write_text(
        'name = "big"\nversion = "1.0.0"\n[[entrypoints]]\npath = "ml_algorithm.py"\n'
    )
    return digests


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[str, int]:
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *argv],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    *out, rss = proc.stdout.strip().splitlines()
    return "\n".join(out), int(rss)


@pytest.mark.slow
def test_thousand_files_and_one_gib_round_trip(moto_server, aws_env, tmp_path) -> None:
    app, outdir, tmpdir = tmp_path / "app", tmp_path / "out", tmp_path / "tmpdir"
    for d in (app, outdir, tmpdir):
        d.mkdir()
    digests = build_app(app)
    private, public = keygen(tmp_path, "owner")
    key_id = create_kms_key(moto_server.url)
    env = {**os.environ, "TMPDIR": str(tmpdir), "NB_KMS_ENDPOINT": moto_server.url}
    bundle = outdir / "big.nb"
    tool = [sys.executable, "-m", "owner_tools"]

    out, pack_rss = run_measured(
        [*tool, "pack", str(app), "-o", str(bundle), "--key-id", key_id,
         "--signing-key", str(private), "--json"],
        env,
    )  # fmt: skip
    summary = json.loads(out)
    assert summary["file_count"] == SMALL_FILES + 2
    assert summary["payload_size"] > BIG
    assert [p.name for p in outdir.iterdir()] == ["big.nb"]
    assert list(tmpdir.iterdir()) == []

    out, verify_rss = run_measured(
        [*tool, "verify", str(bundle), "--owner-key", str(public), "--decrypt"], env
    )
    assert out.startswith("ok: big 1.0.0")
    assert [p.name for p in outdir.iterdir()] == ["big.nb"]
    assert list(tmpdir.iterdir()) == []
    assert pack_rss < RSS_LIMIT_KIB, f"pack peak RSS {pack_rss} KiB"
    assert verify_rss < RSS_LIMIT_KIB, f"verify peak RSS {verify_rss} KiB"

    # Every file's SHA-256, decrypted in memory through the streaming reader.
    seen = {}
    with bundle.open("rb", buffering=0) as f:
        reader = BundleReader.open(f)
        reader.verify_signature([load_owner_key(public)])
        h = reader.header
        key = AwsKms(moto_server.url, "us-east-1").decrypt(
            h.wrapped_key, h.kms_key_id, h.encryption_context
        )
        for item in reader.iter_files(key):
            if item.kind == "file":
                digest = hashlib.sha256()
                for chunk in item.chunks:
                    digest.update(chunk)
                seen[item.path] = digest.hexdigest()
    assert seen == digests
