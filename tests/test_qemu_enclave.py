# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 14: the image `build-eif` writes, booted in QEMU's nitro-enclave machine, end to end.

The production code path on this machine: the toolchain's kernel, our init and a rootfs with
Python (toolchain/, specs/toolchain.md), QEMU's virtio-nsm signing documents with the local
stack's NSM chain (specs/qemu-nsm.md), vsock through our vhost-user back-end (specs/vsock.md).
The user's flow runs through the real CLIs: attestation-gated key release through the local
KMS front, `sync` (a real FUSE mount), `run` with streamed output, `output/` back on the host,
`stop`. A second image from a modified rootfs (another PCR0) is refused its key.

`make test` builds the toolchain first (`make enclave-toolchain`, cached outside the clone).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local_stack import stack
from local_stack.processes import LOCAL_CREDENTIALS
from owner_tools._cli import main as owner_main
from user_runtime._cli import main as user_main

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "examples" / "ml_app"
DATASET = REPO / "examples" / "user" / "dataset" / "patients.csv"
BUNDLE_NAME = "breast-cancer-scorer"
ARGS = "-m model.h5 -d /dataset/ -o /output/"
BUILD_TIME = "2026-11-01T00:00:00+00:00"


def toolchain() -> dict[str, dict[str, str]]:
    """The toolchain's artefacts (toolchain/build.py's current.json)."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "toolchain" / "build.py"), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"the enclave toolchain is not built (make enclave-toolchain): {proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_image(out: Path, rootfs: Path, blobs: Path, owner_pub: Path) -> dict[str, str]:
    args = ["build-eif", "-o", str(out), "--blobs", str(blobs), "--rootfs", str(rootfs)]
    args += ["--owner-key", str(owner_pub), "--build-time", BUILD_TIME]
    assert owner_main(args) == 0
    printed = json.loads(out.with_name(out.name + ".pcrs.json").read_text())["Measurements"]
    return {k: v for k, v in printed.items() if k.startswith("PCR")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The local stack, the booting image, a PCR0-bound key and the packed sample app."""
    tools = toolchain()
    work = tmp_path_factory.mktemp("qemu")
    state = work / "state"
    info, _ = stack.up(state)
    saved = dict(os.environ)
    try:
        os.environ.update(LOCAL_CREDENTIALS)
        os.environ["AWS_CONFIG_FILE"] = str(work / "no-config")
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(work / "no-credentials")
        os.environ["NB_STATE_DIR"] = str(state)
        assert owner_main(["keygen", "-o", str(work / "owner")]) == 0
        eif = work / "app.eif"
        rootfs, blobs = Path(tools["rootfs"]["dir"]), Path(tools["blobs"]["dir"])
        pcrs = build_image(eif, rootfs, blobs, work / "owner.pub")
        key_id = _bound_key(info, eif, work / "policy.json")
        bundle = work / "app.nb"
        pack = ["pack", str(APP), "-o", str(bundle), "--key-id", key_id]
        pack += ["--signing-key", str(work / "owner.key"), "--kms-endpoint", info.kms.url]
        assert owner_main([*pack, "--region", info.region]) == 0
        yield {
            "work": work,
            "state": state,
            "eif": eif,
            "pcrs": pcrs,
            "bundle": bundle,
            "rootfs": rootfs,
            "blobs": blobs,
            "key_id": key_id,
            "kms_url": info.kms.url,
            "region": info.region,
        }
    finally:
        user_main(["enclave", "stop", "--state-dir", str(state)])
        os.environ.clear()
        os.environ.update(saved)
        stack.down(state)


def _bound_key(info, eif: Path, policy_path: Path) -> str:
    import boto3

    kms = boto3.session.Session().client("kms", region_name=info.region, endpoint_url=info.kms.url)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    args = ["policy", "--eif", str(eif), "--bundle-name", BUNDLE_NAME]
    args += ["--account", stack.LOCAL_ACCOUNT, "--enclave-principal", stack.ENCLAVE_PRINCIPAL]
    args += ["--admin-principal", stack.OWNER_PRINCIPAL, "--owner-principal"]
    assert owner_main([*args, stack.OWNER_PRINCIPAL, "-o", str(policy_path)]) == 0
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy_path.read_text())
    return key_id


def _cli(*argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.ENCLAVE_CREDENTIALS}
    return subprocess.run(
        [sys.executable, "-m", "user_runtime", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=env,
    )


def _start(eif: Path) -> dict:
    proc = _cli("enclave", "start", "--eif", str(eif), "--backend", "qemu")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def test_user_flow_on_the_booted_image(world, tmp_path) -> None:
    status = _start(world["eif"])
    assert status["backend"] == "qemu"
    assert status["accel"] in {"kvm", "tcg"}
    assert status["address"].startswith("uds-vsock:")

    # PCR0/1/2 in the document QEMU's NSM signs equal what build-eif printed.
    nonce = os.urandom(16).hex()
    root = world["state"] / "nsm-pki" / "root.pem"
    fetched = _cli("attestation", "fetch", "--nonce", nonce, "--root", str(root))
    assert fetched.returncode == 0, fetched.stderr
    doc = json.loads(fetched.stdout)
    assert doc["nonce"] == nonce
    for index in (0, 1, 2):
        assert doc["pcrs"][str(index)] == world["pcrs"][f"PCR{index}"]

    synced = tmp_path / "synced"
    mounted = _cli("sync", "-d", str(synced))
    assert mounted.returncode == 0, mounted.stderr
    try:
        shutil.copy(world["bundle"], synced / "encrypted" / "app.nb")
        shutil.copy(DATASET, synced / "dataset" / DATASET.name)
        run_nonce = os.urandom(16).hex()
        run = _cli("run", "-f", "app.nb", "-s", "ml_algorithm.py", "-a", ARGS, "--nonce", run_nonce)
        assert run.returncode == 0, run.stderr
        assert any("scored 169 rows of patients.csv" in line for line in run.stdout.splitlines())
        deadline = time.monotonic() + 60
        while not (synced / "output" / "receipt.cbor").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        metrics = json.loads((synced / "output" / "metrics.json").read_text())
        assert metrics["rows"] == 169
        assert (synced / "output" / "predictions.csv").read_text().count("\n") == 170
        _check_receipt(world, synced, root, run_nonce)

        refused = _cli("run", "-f", "app.nb", "-s", "train.py")
        assert refused.returncode == 1
        assert "[ml_algorithm]" not in refused.stdout
    finally:
        assert _cli("sync", "--stop", "-d", str(synced)).returncode == 0
    assert _cli("enclave", "stop").returncode == 0
    assert not _running(status["pid"])
    left = [p.name for p in (world["state"] / "enclave").glob("*.sock*")]
    assert left == []


def _check_receipt(world, synced: Path, root: Path, nonce: str) -> None:
    """The run's receipt, signed by QEMU's virtio-nsm, verifies (specs/receipts.md §6)."""
    receipt = synced / "output" / "receipt.cbor"
    common = ["receipt", "verify", str(receipt), "--root", str(root)]
    files = ["--output-dir", str(synced / "output"), "--inputs", str(synced)]
    good = _cli(*common, "--eif", str(world["eif"]), "--nonce", nonce, *files, "--json")
    assert good.returncode == 0, good.stderr
    summary = json.loads(good.stdout)
    assert summary["pcrs"]["0"] == world["pcrs"]["PCR0"]
    assert summary["outputs"]["checked"] == summary["outputs"]["count"] >= 2
    assert summary["inputs"] == {"count": 1, "checked": 1}
    assert summary["bundles"][0]["name"] == BUNDLE_NAME
    other = _cli(*common, "--expect-pcr0", "00" * 48)
    assert other.returncode == 1
    assert "pcr0: the receipt's enclave ran another image" in other.stderr
    replay = _cli(*common, "--eif", str(world["eif"]), "--nonce", "ab" * 16)
    assert replay.returncode == 1
    assert "nonce" in replay.stderr


def test_modified_rootfs_is_refused_its_key(world, tmp_path) -> None:
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-al", str(world["rootfs"]), str(rootfs)], check=True)
    (rootfs / "etc" / "modified-by-the-host").write_text("not the owner's image\n")
    eif = tmp_path / "modified.eif"
    pcrs = build_image(eif, rootfs, world["blobs"], world["work"] / "owner.pub")
    assert pcrs["PCR0"] != world["pcrs"]["PCR0"]
    _start(eif)
    try:
        run = _cli("run", "-f", str(world["bundle"]), "-s", "ml_algorithm.py", "-a", ARGS)
        assert run.returncode == 1
        assert "KEY_RELEASE_FAILED" in run.stderr
        assert "[ml_algorithm]" not in run.stdout
    finally:
        assert _cli("enclave", "stop").returncode == 0


# -- issue 21: one world on every backend --------------------------------------------------

PIPELINE = """\
import json, multiprocessing, os, subprocess, sys
from pathlib import Path

def double(x):
    return 2 * x

if __name__ == "__main__":
    config = json.loads(Path(sys.argv[1]).read_text())
    rows = [float(x) for x in Path(config["input"]).read_text().split()]
    with multiprocessing.Pool(2) as pool:
        doubled = pool.map(double, rows)
    Path(config["features"]).write_text(" ".join(str(x) for x in doubled))
    subprocess.run(["python3", str(Path(__file__).parent / "stage2.py"), sys.argv[1]], check=True)
    print("url", sys.argv[2], "n", os.environ["N"], "pids", sorted(os.listdir("/proc"))[:1])
"""

STAGE2 = """\
import json, os, sys
from pathlib import Path
config = json.loads(Path(sys.argv[1]).read_text())
values = [float(x) for x in Path(config["features"]).read_text().split()]
Path(config["report"]).write_text(f"sum={sum(values)} n={os.environ['N']}\\n")
"""

CONFIG = {"input": "/dataset/rows.txt", "features": "/output/f.txt", "report": "/output/r.txt"}


def _patterns_bundle(world) -> Path:
    app = world["work"] / "patterns"
    app.mkdir(exist_ok=True)
    (app / "pipeline.py").write_text(PIPELINE)
    (app / "stage2.py").write_text(STAGE2)
    (app / "bundle.toml").write_text(
        f'name = "{BUNDLE_NAME}"\nversion = "2.0.0"\n[[entrypoints]]\npath = "pipeline.py"\n'
        '[output]\nstderr = true\n[env]\nallow = ["N"]\n[env.defaults]\nN = "3"\n'
    )
    bundle = world["work"] / "patterns.nb"
    pack = ["pack", str(app), "-o", str(bundle), "--key-id", world["key_id"]]
    pack += ["--signing-key", str(world["work"] / "owner.key")]
    pack += ["--kms-endpoint", world["kms_url"], "--region", world["region"]]
    assert owner_main(pack) == 0
    return bundle


def _run_patterns(world, bundle: Path, backend: str) -> tuple[str, dict[str, bytes]]:
    from user_runtime.rpc.client import EnclaveClient

    status = _cli("enclave", "start", "--eif", str(world["eif"]), "--backend", backend)
    assert status.returncode == 0, status.stderr
    address = json.loads(status.stdout)["address"]
    if backend == "local":  # the image's own rootfs, not the host's Python
        assert json.loads(status.stdout)["world"] == "image"
    try:
        with EnclaveClient.connect(address) as client:
            for name, data in (("config.json", json.dumps(CONFIG)), ("rows.txt", "1 2 3.5\n")):
                client.create(f"dataset/{name}")
                client.write(f"dataset/{name}", 0, data.encode())
        args = "/dataset/config.json https://example.com//a/../b"
        run = _cli("run", "-f", str(bundle), "-s", "pipeline.py", "-a", args, "--env", "N=5")
        assert run.returncode == 0, run.stderr
        with EnclaveClient.connect(address) as client:
            outputs = {n: client.read(f"output/{n}", 0, 1 << 16) for n in ("f.txt", "r.txt")}
        return run.stdout, outputs
    finally:
        assert _cli("enclave", "stop").returncode == 0


def test_same_bundle_same_outputs_on_local_and_qemu(world) -> None:
    bundle = _patterns_bundle(world)
    local = _run_patterns(world, bundle, "local")
    qemu = _run_patterns(world, bundle, "qemu")
    assert local == qemu
    assert local[0] == "url https://example.com//a/../b n 5 pids ['1']\n"
    assert local[1]["r.txt"] == b"sum=13.0 n=5\n"


# -- issues 19 and 21: the local backend runs the command the image records -------------------


def _recorded(eif: Path, name: str) -> list[str]:
    """A file of the customer ramdisk (`cmd`, `env`), read with the format library only."""
    from package_format.eif import iter_cpio, read_eif
    from package_format.eif.reader import SectionReader

    with eif.open("rb") as f:
        image = read_eif(f)
        for section in image.ramdisks()[1:]:
            for member in iter_cpio(SectionReader(f, section), want=lambda n: n == name):
                if member.name == name and member.data is not None:
                    return member.data.decode().splitlines()
    pytest.fail(f"{eif} records no {name}")


def _fd_targets(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.append(str(fd.readlink()))
        except FileNotFoundError:
            continue  # closed meanwhile
    return out


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_local_backend_runs_the_command_the_image_records(world, monkeypatch) -> None:
    monkeypatch.setenv("NB_LOCAL_WORLD", "image")  # refuse rather than fall back to the host
    started = _cli("enclave", "start", "--eif", str(world["eif"]), "--backend", "local")
    assert started.returncode == 0, started.stderr
    status = json.loads(started.stdout)
    try:
        assert status["world"] == "image"
        assert "warning" not in started.stderr
        (server,) = _children(status["pid"])
        cmdline = Path(f"/proc/{server}/cmdline").read_bytes().decode().split("\0")[:-1]
        recorded = _recorded(world["eif"], "cmd")
        at = recorded.index("--vsock")
        swapped = [*recorded[:at], "--unix", "/run/nitro-bundles-io/enclave.sock"]
        assert cmdline == [*swapped, *recorded[at + 2 :], "--memory-budget", "2048M"]
        environ = Path(f"/proc/{server}/environ").read_bytes().decode().split("\0")
        kept = [e for e in _recorded(world["eif"], "env") if not e.startswith("NB_KMS_TARGET=")]
        assert environ[: len(kept)] == kept
        # Its "/" is the image's tree, read-only; nothing of the host's tree is there.
        inside = Path(f"/proc/{server}/root")
        tree = Path(status["rootfs"]) / "rootfs"
        assert (inside / recorded[0].lstrip("/")).samefile(tree / recorded[0].lstrip("/"))
        assert not (inside / str(REPO).lstrip("/")).exists()
        # The cache's lock stays with the launcher: no descriptor of the server leads out.
        fds = _fd_targets(server)
        assert not any(str(Path(status["rootfs"]).parent) in target for target in fds), fds
        held = _fd_targets(status["pid"])
        assert status["rootfs"] in held  # unshare's parent holds the entry's lock
        mounts = Path(f"/proc/{server}/mountinfo").read_text().splitlines()
        (root_mount,) = [m for m in mounts if m.split()[4] == "/"]
        assert "ro" in root_mount.split()[5].split(",")
        # The sample app runs with the image's own packages (the host's venv is not there).
        from user_runtime.rpc.client import EnclaveClient

        with EnclaveClient.connect(status["address"]) as client:
            client.create(f"dataset/{DATASET.name}")
            client.write(f"dataset/{DATASET.name}", 0, DATASET.read_bytes())
        run = _cli("run", "-f", str(world["bundle"]), "-s", "ml_algorithm.py", "-a", ARGS)
        assert run.returncode == 0, run.stderr
        assert "scored 169 rows of patients.csv" in run.stdout
    finally:
        assert _cli("enclave", "stop").returncode == 0
    assert not _running(status["pid"])
    assert not (world["state"] / "enclave" / "io").exists()


# -- issue 21: the app's dependencies in the image, apart from the server's ---------------

PINNED = REPO / "tests" / "apps" / "pinned"


def _pinned_image(world, out: Path) -> dict[str, str]:
    """build-eif --app-requirements of the pinned app (the rootfs builder, cached)."""
    args = ["build-eif", "-o", str(out), "--blobs", str(world["blobs"])]
    args += ["--app-requirements", str(PINNED / "requirements.txt")]
    args += ["--owner-key", str(world["work"] / "owner.pub"), "--build-time", BUILD_TIME]
    assert owner_main(args) == 0
    printed = json.loads(out.with_name(out.name + ".pcrs.json").read_text())["Measurements"]
    return {k: v for k, v in printed.items() if k.startswith("PCR")}


def test_app_environment_pins_apart_from_the_server_on_qemu(world, tmp_path) -> None:
    import boto3

    from owner_tools.image_env_build import build_app_rootfs

    eif = tmp_path / "pinned.eif"
    pcrs = _pinned_image(world, eif)
    # Same lock, same PCRs (the second build reuses the cached rootfs).
    assert _pinned_image(world, tmp_path / "again.eif") == pcrs
    rootfs = build_app_rootfs(PINNED / "requirements.txt", [])
    assert rootfs.cached
    digest = hashlib.sha256((PINNED / "requirements.txt").read_bytes()).hexdigest()
    server_site = rootfs.path / "opt/nitro-bundles/venv/lib/python3.13/site-packages"
    app_site = rootfs.path / f"opt/nitro-bundles/app/{digest[:16]}/lib/python3.13/site-packages"
    assert (server_site / "urllib3-2.8.0.dist-info").is_dir()
    assert (app_site / "urllib3-1.26.20.dist-info").is_dir()
    assert not (app_site / "boto3").exists()

    kms = boto3.session.Session().client(
        "kms", region_name=world["region"], endpoint_url=world["kms_url"]
    )
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    policy = tmp_path / "policy.json"
    args = ["policy", "--eif", str(eif), "--bundle-name", "pinned-app"]
    args += ["--account", stack.LOCAL_ACCOUNT, "--enclave-principal", stack.ENCLAVE_PRINCIPAL]
    args += ["--admin-principal", stack.OWNER_PRINCIPAL, "--owner-principal"]
    assert owner_main([*args, stack.OWNER_PRINCIPAL, "-o", str(policy)]) == 0
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy.read_text())
    bundle = tmp_path / "pinned.nb"
    pack = ["pack", str(PINNED), "-o", str(bundle), "--key-id", key_id]
    pack += ["--signing-key", str(world["work"] / "owner.key")]
    assert owner_main([*pack, "--kms-endpoint", world["kms_url"], "--region", world["region"]]) == 0

    _start(eif)
    try:
        run = _cli("run", "-f", str(bundle), "-s", "versions.py")
        assert run.returncode == 0, run.stderr
        found = json.loads(run.stdout.strip().splitlines()[-1])
        env_dir = f"/opt/nitro-bundles/app/{digest[:16]}"
        assert found["urllib3"] == "1.26.20"
        assert found["typing_extensions"] == "4.12.2"
        assert found["prefix"] == env_dir
        assert found["typing_extensions_file"].startswith(env_dir + "/lib/")
        assert found["path_python_urllib3"] == "1.26.20"
        assert found["path_python_prefix"] == env_dir
        # The sample app names its own environment, which this image lacks: refused in one
        # line before any key release (its key is not even bound to this image).
        refused = _cli("run", "-f", str(world["bundle"]), "-s", "ml_algorithm.py", "-a", ARGS)
        assert refused.returncode == 1
        assert "ENVIRONMENT_MISSING" in refused.stderr
        assert "KEY_RELEASE_FAILED" not in refused.stderr
    finally:
        assert _cli("enclave", "stop").returncode == 0
