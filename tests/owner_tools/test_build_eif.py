# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""owner-tools build-eif: AWS's bytes, reproducibility, what PCR2 measures (issue 3)."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from owner_tools._cli import main
from owner_tools.image import CONFIG_PATH, SERVER_PYTHON
from owner_tools.image_ramdisk import customer_entries
from owner_tools.image_rootfs import walk_directory
from package_format.eif import build_archive, extract_files, read_cpio, read_eif
from package_format.eif.reader import SectionReader

REPO = Path(__file__).resolve().parents[2]
BLOBS = REPO / "examples" / "dev-blobs"
OWNER_KEY_HEX = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
FIXED = "2026-01-02T03:04:05+00:00"


@pytest.fixture
def owner_pub(tmp_path) -> Path:
    from owner_tools.keys import keygen

    _, pub = keygen(tmp_path / "owner")
    return pub


def _rootfs(root: Path, order: list[str], mtime: int) -> Path:
    files = {
        "app/main.py": b"print('hi')\n",
        "app/data/model.bin": bytes(range(256)) * 64,
        "bin/hello.sh": b"#!/bin/sh\necho hello\n",
        "etc/os-release": b"NAME=test\n",
    }
    for rel in order:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])
        path.chmod(0o755 if rel.endswith(".sh") else 0o644)
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "bin" / "sh-link").symlink_to("hello.sh")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.utime(Path(dirpath) / n, (mtime, mtime), follow_symlinks=False)
    return root


def _build(tmp_path, out_name, *extra, owner_pub) -> tuple[int, Path]:
    # The toy trees here test the image format, not a server that boots (test_server_check).
    if "--rootfs" in extra:
        extra = (*extra, "--no-server-check")
    out = tmp_path / out_name
    rc = main(
        [
            "build-eif",
            "-o",
            str(out),
            "--blobs",
            str(BLOBS / "x86_64"),
            "--owner-key",
            str(owner_pub),
            "--name",
            "test-image",
            *extra,
        ]
    )
    return rc, out


def test_raw_build_from_vector_inputs_is_byte_identical(tmp_path, aws_vector, capsys):
    out = tmp_path / "tiny.eif"
    rc = main(
        [
            "build-eif",
            "-o",
            str(out),
            "--blobs",
            str(tmp_path / "none"),
            "--kernel",
            str(aws_vector("eif/inputs/kernel.bin")),
            "--cmdline",
            str(aws_vector("eif/inputs/cmdline-x86_64.txt")),
            "--ramdisk",
            str(aws_vector("eif/inputs/ramdisk0.bin")),
            "--ramdisk",
            str(aws_vector("eif/inputs/ramdisk1.bin")),
            "--name",
            "tiny-x86_64",
            "--version",
            "1.0",
            "--build-time",
            "1970-01-01T00:00:00+00:00",
            "--build-tool",
            "eif-test-vectors",
            "--build-tool-version",
            "0.0.0",
            "--operating-system",
            "Linux",
            "--kernel-version",
            "0.0.0-test",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0
    assert out.read_bytes() == aws_vector("eif/eif/tiny-x86_64-unsigned.eif").read_bytes()
    expected = json.loads(
        aws_vector("eif/expected/tiny-x86_64-unsigned.describe-eif.json").read_text()
    )
    printed = json.loads(captured.out)
    assert printed == {"Measurements": expected["Measurements"]}
    assert captured.out == json.dumps(printed, indent=2) + "\n"
    assert captured.err.splitlines() == [
        "Start building the Enclave Image...",
        "Enclave Image successfully created.",
    ]
    assert (tmp_path / "tiny.eif.pcrs.json").read_text() == captured.out


def test_customer_ramdisk_from_directory_matches_linuxkit_vector(tmp_path, aws_vector):
    root = tmp_path / "image"
    (root / "bin").mkdir(parents=True)
    script = root / "bin" / "hello.sh"
    script.write_bytes(b"#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    (root / "bin").chmod(0o755)
    for p in (script, root / "bin"):
        os.utime(p, (1700000000, 1700000000))
    entries = walk_directory(root, None)
    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    data = build_archive(customer_entries(entries, ["/bin/hello.sh"], env))
    assert data == aws_vector("eif/inputs/ramdisk1.bin").read_bytes()


def test_build_places_server_code_and_config_where_pcr2_measures_them(tmp_path, owner_pub, capsys):
    rootfs = _rootfs(tmp_path / "rootfs", ["app/main.py", "bin/hello.sh"], 1600000000)
    rc, out = _build(
        tmp_path,
        "enclave.eif",
        "--rootfs",
        str(rootfs),
        "--min-bundle-version",
        "demo=1.2.0",
        "--kms-region",
        "eu-west-1",
        "--build-time",
        FIXED,
        owner_pub=owner_pub,
    )
    assert rc == 0, capsys.readouterr().err
    with out.open("rb") as f:
        image = read_eif(f)
        customer = image.ramdisks()[1]
        code = extract_files(SectionReader(f, customer), f"rootfs/{SERVER_PYTHON}/")
        members = read_cpio(SectionReader(f, customer))
    assert image.crc_ok
    enclave_src = sorted((REPO / "enclave").rglob("*.py"))
    assert enclave_src
    for path in enclave_src:
        assert code[path.relative_to(REPO).as_posix()] == path.read_bytes()
    assert "package_format/eif/cpio.py" in code
    by_name = {m.name: m for m in members}
    config = json.loads(by_name[f"rootfs/{CONFIG_PATH}"].data)
    from owner_tools.keys import load_owner_key

    assert config == {
        "environments": [],
        "format": "nitro-bundles/enclave-config/v1",
        "kms_region": "eu-west-1",
        "min_bundle_versions": {"demo": "1.2.0"},
        "owner_keys": [load_owner_key(owner_pub).hex()],
    }
    assert (
        by_name["cmd"].data
        == b"/opt/nitro-bundles/venv/bin/python3\n-m\nenclave\nserve\n--vsock\n5005\n"
        b"--config\n/etc/nitro-bundles/enclave.json\n--workdir\n/run/nitro-bundles\n"
    )
    assert b"PYTHONPATH=/opt/nitro-bundles/python\n" in by_name["env"].data
    assert by_name["env"].data.startswith(b"PATH=/opt/nitro-bundles/venv/bin:")
    assert b"NB_KMS_TARGET=vsock:3:8000\n" in by_name["env"].data
    assert by_name["rootfs/app/main.py"].data == b"print('hi')\n"
    assert by_name["rootfs/bin/sh-link"].data == b"hello.sh"
    assert by_name["rootfs/app/"].uid == 0


def test_same_rootfs_different_order_and_mtimes_gives_identical_bytes(tmp_path, owner_pub, capsys):
    a = _rootfs(
        tmp_path / "a",
        ["app/main.py", "app/data/model.bin", "bin/hello.sh", "etc/os-release"],
        1600000000,
    )
    b = _rootfs(
        tmp_path / "b",
        ["etc/os-release", "bin/hello.sh", "app/data/model.bin", "app/main.py"],
        1700000000,
    )
    rc1, out1 = _build(
        tmp_path, "a.eif", "--rootfs", str(a), "--build-time", FIXED, owner_pub=owner_pub
    )
    rc2, out2 = _build(
        tmp_path, "b.eif", "--rootfs", str(b), "--build-time", FIXED, owner_pub=owner_pub
    )
    assert (rc1, rc2) == (0, 0)
    assert out1.read_bytes() == out2.read_bytes()
    pcrs = [json.loads((tmp_path / f"{n}.eif.pcrs.json").read_text()) for n in ("a", "b")]
    assert pcrs[0] == pcrs[1]
    capsys.readouterr()


def test_without_fixed_build_time_mtimes_change_pcr2(tmp_path, owner_pub, capsys):
    a = _rootfs(tmp_path / "a", ["app/main.py"], 1600000000)
    b = _rootfs(tmp_path / "b", ["app/main.py"], 1700000000)
    _build(tmp_path, "a.eif", "--rootfs", str(a), owner_pub=owner_pub)
    _build(tmp_path, "b.eif", "--rootfs", str(b), owner_pub=owner_pub)
    with (tmp_path / "a.eif").open("rb") as fa, (tmp_path / "b.eif").open("rb") as fb:
        ma, mb = read_eif(fa).measurements, read_eif(fb).measurements
    assert ma.pcr1 == mb.pcr1
    assert ma.pcr2 != mb.pcr2
    capsys.readouterr()


def test_tar_rootfs_equals_directory_rootfs(tmp_path, owner_pub, capsys):
    root = _rootfs(tmp_path / "dir", ["app/main.py", "bin/hello.sh"], 1600000000)
    tar_path = tmp_path / "rootfs.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for path in sorted(root.rglob("*"), reverse=True):  # a different order on purpose
            info = tar.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    rc1, out1 = _build(
        tmp_path, "d.eif", "--rootfs", str(root), "--build-time", FIXED, owner_pub=owner_pub
    )
    rc2, out2 = _build(
        tmp_path, "t.eif", "--rootfs", str(tar_path), "--build-time", FIXED, owner_pub=owner_pub
    )
    assert (rc1, rc2) == (0, 0)
    assert out1.read_bytes() == out2.read_bytes()
    capsys.readouterr()


def test_empty_base_rootfs_and_aarch64(tmp_path, owner_pub, capsys):
    out = tmp_path / "arm.eif"
    rc = main(
        [
            "build-eif",
            "-o",
            str(out),
            "--arch",
            "aarch64",
            "--blobs",
            str(BLOBS / "aarch64"),
            "--owner-key",
            str(owner_pub),
            "--build-time",
            "0",
        ]
    )
    assert rc == 0
    with out.open("rb") as f:
        image = read_eif(f)
    assert image.header.flags == 1
    assert image.metadata is not None
    assert image.metadata.build.build_time == "1970-01-01T00:00:00+00:00"
    assert (image.metadata.build.operating_system, image.metadata.build.kernel_version) == (
        "Linux",
        "0.0.0",
    )
    assert image.cmdline == (BLOBS / "aarch64" / "cmdline").read_bytes().strip()
    capsys.readouterr()


def test_bootstrap_ramdisk_is_dev_init_nsm(tmp_path, owner_pub, capsys):
    rc, out = _build(tmp_path, "x.eif", "--build-time", FIXED, owner_pub=owner_pub)
    assert rc == 0
    with out.open("rb") as f:
        image = read_eif(f)
        members = read_cpio(SectionReader(f, image.ramdisks()[0]))
    assert [(m.name, oct(m.mode)) for m in members] == [
        ("dev", "0o40755"),
        ("init", "0o100755"),
        ("nsm.ko", "0o100755"),
    ]
    assert members[1].data == (BLOBS / "x86_64" / "init").read_bytes()
    capsys.readouterr()


def test_custom_metadata_name_and_version(tmp_path, owner_pub, capsys):
    meta = tmp_path / "meta.json"
    meta.write_text('{"team": "ml", "z": null}')
    rc, out = _build(
        tmp_path,
        "m.eif",
        "--name",
        "demo",
        "--version",
        "2.0",
        "--metadata",
        str(meta),
        "--build-time",
        FIXED,
        owner_pub=owner_pub,
    )
    assert rc == 0
    capsys.readouterr()
    assert main(["describe-eif", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["ImageName"], info["ImageVersion"]) == ("demo", "2.0")
    assert info["Metadata"]["team"] == "ml"
    assert "z" not in info["Metadata"]
    assert info["Metadata"]["BuildTime"] == FIXED


def test_nitro_cli_1_5_hash_algorithm_string(tmp_path, owner_pub, capsys):
    rc, _ = _build(tmp_path, "n.eif", "--nitro-cli-compat", "1.5", owner_pub=owner_pub)
    assert rc == 0
    assert (
        json.loads(capsys.readouterr().out)["Measurements"]["HashAlgorithm"] == "Sha512_48 { .. }"
    )


def test_rootfs_entries_dropped_replaced_and_hardlinks_as_linuxkit(tmp_path):
    root = tmp_path / "img"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("builder\n")
    (root / "etc" / "hosts").write_text("10.0.0.1 evil\n")
    (root / ".dockerenv").write_text("")
    (root / "data").mkdir()
    (root / "data" / "a.bin").write_bytes(b"same")
    os.link(root / "data" / "a.bin", root / "data" / "b.bin")
    entries = walk_directory(root, 1600000000)
    members = read_cpio(build_archive(customer_entries(entries, ["x"], [])))
    by_name = {m.name: m for m in members}
    assert "rootfs/etc/hostname" not in by_name
    assert "rootfs/.dockerenv" not in by_name
    assert by_name["rootfs/etc/hosts"].data.startswith(b"127.0.0.1       localhost\n")
    assert by_name["rootfs/etc/hosts"].mtime == 1492533000
    assert by_name["rootfs/etc/"].mtime == 1492533000
    assert by_name["rootfs/data/"].mtime == 1600000000
    assert by_name["rootfs/data/b.bin"].is_symlink
    assert by_name["rootfs/data/b.bin"].data == b"a.bin"
    assert by_name["rootfs/etc/resolv.conf"].data == b"/run/resolvconf/resolv.conf"
    names = [m.name for m in members]
    assert names[-3:] == ["rootfs/tmp", "cmd", "env"]


def test_build_and_sign_in_one_step(tmp_path, owner_pub, aws_vector, capsys):
    rc, out = _build(
        tmp_path,
        "s.eif",
        "--signing-certificate",
        str(aws_vector("eif/inputs/signing-cert.pem")),
        "--private-key",
        str(aws_vector("eif/inputs/signing-key.TEST-ONLY.pem")),
        owner_pub=owner_pub,
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)["Measurements"]
    assert printed["PCR8"].startswith("593210db")
    with out.open("rb") as f:
        image = read_eif(f)
    assert image.signature_ok()
    assert json.loads((tmp_path / "s.eif.pcrs.json").read_text())["Measurements"] == printed


def test_tar_made_with_dot_root_is_accepted(tmp_path, owner_pub, capsys):
    root = _rootfs(tmp_path / "dir", ["app/main.py"], 1600000000)
    tar_path = tmp_path / "dot.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(str(root), arcname=".")
    rc, out = _build(tmp_path, "dot.eif", "--rootfs", str(tar_path), owner_pub=owner_pub)
    assert rc == 0, capsys.readouterr().err
    with out.open("rb") as f:
        image = read_eif(f)
        names = [m.name for m in read_cpio(SectionReader(f, image.ramdisks()[1]))]
    assert "rootfs/app/main.py" in names
    assert not any(n.startswith("rootfs/./") or n == "rootfs//" for n in names)


def _server_rootfs(root: Path) -> Path:
    """A toy tree with the server's interpreter behind a chain of links, as Debian's."""
    (root / "usr" / "bin").mkdir(parents=True)
    python = root / "usr" / "bin" / "python3.13"
    python.write_bytes(b"\x7fELF")
    python.chmod(0o755)
    (root / "usr" / "bin" / "python3").symlink_to("python3.13")
    (root / "bin").symlink_to("usr/bin")
    venv = root / "opt" / "nitro-bundles" / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python3").symlink_to("/bin/python3")
    return root


def test_server_check_accepts_a_rootfs_whose_server_python_resolves(tmp_path, owner_pub) -> None:
    root = _server_rootfs(tmp_path / "rootfs")
    out = tmp_path / "ok.eif"
    args = ["build-eif", "-o", str(out), "--blobs", str(BLOBS / "x86_64"), "--rootfs", str(root)]
    assert main([*args, "--owner-key", str(owner_pub)]) == 0
    assert out.exists()


@pytest.mark.parametrize("damage", ["missing", "dangling", "not-executable"])
def test_server_check_refuses_a_rootfs_without_the_server_python(
    tmp_path, owner_pub, capsys, damage: str
) -> None:
    root = _server_rootfs(tmp_path / "rootfs")
    if damage == "missing":
        (root / "opt" / "nitro-bundles" / "venv" / "bin" / "python3").unlink()
    elif damage == "dangling":
        (root / "usr" / "bin" / "python3.13").unlink()
    else:
        (root / "usr" / "bin" / "python3.13").chmod(0o644)
    out = tmp_path / "bad.eif"
    args = ["build-eif", "-o", str(out), "--blobs", str(BLOBS / "x86_64"), "--rootfs", str(root)]
    capsys.readouterr()
    assert main([*args, "--owner-key", str(owner_pub)]) == 1
    err = capsys.readouterr().err.removeprefix("Start building the Enclave Image...\n")
    assert err.count("\n") == 1
    assert "has no /opt/nitro-bundles/venv/bin/python3 (the enclave server's Python)" in err
    assert list(tmp_path.glob("bad.eif*")) == []
