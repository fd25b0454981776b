# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""QEMU's nitro-enclave machine with our virtio-nsm signing patch (specs/qemu-nsm.md).

Uses the QEMU and kernel of the toolchain (`$NB_QEMU` and `$NB_KERNEL`, else the toolchain
cache's current.json) and skips when they are not built. The guest's PID 1 is
nsm_probe.c: it asks /dev/nsm for two documents and prints them on the console.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclave.nsm.simulator import create_sim_pki
from package_format.attestation import verify_attestation
from package_format.attestation.errors import AttestationError
from package_format.eif import CpioEntry, SectionSource, SectionType, build_archive, write_eif
from package_format.eif import sign_eif as sign_image
from package_format.eif.pcr import Measurements

HERE = Path(__file__).resolve().parent
GUARD = 300  # seconds: a hung QEMU fails the test instead of hanging it (never asserted)
# loglevel=1: no kernel message lands inside the probe's output lines on the console.
CMDLINE = b"reboot=k panic=30 pci=off nomodules console=ttyS0 random.trust_cpu=on loglevel=1"
MODULE_ID = "i-0123456789abcdef0-enc0123456789abcdef"


def _cache_entry(name: str) -> Path | None:
    base = os.environ.get("NB_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nitro-bundles"
    )
    current = Path(base) / "toolchain" / "current.json"
    if not current.is_file():
        return None
    entry = json.loads(current.read_text()).get(name) or {}
    if name == "qemu":
        return Path(entry["bin"]) if "bin" in entry else None
    return Path(entry["dir"]) / "bzImage" if "dir" in entry else None


def _tool(env: str, name: str) -> Path:
    path = Path(os.environ[env]) if env in os.environ else _cache_entry(name)
    if path is None or not path.is_file():
        pytest.skip(f"no {name} built (set {env} or run toolchain/build.py)")
    return path


@pytest.fixture(scope="module")
def qemu() -> Path:
    return _tool("NB_QEMU", "qemu")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "nsm"
    create_sim_pki(directory)
    return directory


def _signing(key: Path, cert: Path, bundle: Path) -> list[str]:
    return [
        *("-global", f"virtio-nsm-device.signing-key={key}"),
        *("-global", f"virtio-nsm-device.signing-cert={cert}"),
        *("-global", f"virtio-nsm-device.cabundle={bundle}"),
    ]


def _paused(qemu: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # microvm without ACPI has the same virtio-mmio bus and needs no EIF nor vsock backend.
    cmd = [str(qemu), "-M", "microvm,acpi=off", "-accel", "tcg", "-display", "none"]
    cmd += ["-serial", "none", "-monitor", "stdio", "-S", *args]
    return subprocess.run(
        cmd, input="quit\n", capture_output=True, text=True, timeout=GUARD, check=False
    )


def test_device_lists_the_signing_properties(qemu: Path) -> None:
    out = subprocess.run(
        [str(qemu), "-device", "virtio-nsm-device,help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=GUARD,
    ).stdout
    for prop in ("signing-key=", "signing-cert=", "cabundle="):
        assert prop in out


def test_simulator_pki_files_are_accepted(qemu: Path, pki: Path) -> None:
    files = (pki / "intermediate.key", pki / "intermediate.pem", pki / "root.pem")
    done = _paused(qemu, "-device", "virtio-nsm-device", *_signing(*files))
    assert done.returncode == 0, done.stderr


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_key", "signing-key: Failed to open file"),
        ("junk_key", "not an unencrypted PEM private key"),
        ("p256_key", "not a P-384 EC key"),
        ("other_key", "does not match signing-key"),
        ("junk_cert", "not a PEM certificate"),
        ("empty_bundle", "no PEM certificates"),
        ("no_bundle", "must be given together"),
    ],
)
def test_bad_signing_file_stops_qemu_with_one_line(
    qemu: Path, pki: Path, tmp_path: Path, case: str, message: str
) -> None:
    key, cert, bundle = pki / "intermediate.key", pki / "intermediate.pem", pki / "root.pem"
    junk = tmp_path / "junk.pem"
    junk.write_text("not pem\n")
    if case == "missing_key":
        key = tmp_path / "absent.key"
    elif case == "junk_key":
        key = junk
    elif case in {"p256_key", "other_key"}:
        key = tmp_path / "wrong.key"
        curve = ec.SECP256R1() if case == "p256_key" else ec.SECP384R1()
        key.write_bytes(_pem_key(ec.generate_private_key(curve)))
    elif case == "junk_cert":
        cert = junk
    elif case == "empty_bundle":
        bundle = junk
    args = _signing(key, cert, bundle)
    if case == "no_bundle":
        args = args[:4]
    done = _paused(qemu, "-device", "virtio-nsm-device", *args)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert message in lines[0]


# --- booting a guest ---------------------------------------------------------------------


class _VhostUserStub:
    """A vhost-user vsock backend that answers what QEMU asks and carries no data."""

    REPLIES: dict[int, Callable[[bytes], bytes]] = {  # noqa: RUF012
        1: lambda _: struct.pack("<Q", 1 << 32 | 1 << 30),  # features: VERSION_1, PROTOCOL
        15: lambda _: struct.pack("<Q", 1 << 9),  # protocol features: CONFIG
        24: lambda body: body[:12] + struct.pack("<Q", 16).ljust(body[4], b"\0"),  # cid 16
        11: lambda body: body[:4] + bytes(4),  # vring base
    }

    def __init__(self, path: Path) -> None:
        path.unlink(missing_ok=True)  # left by an earlier boot
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(1)
        self.conn: socket.socket | None = None

    def _recv(self, n: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < n:
            chunk, ancdata, _, _ = self.conn.recvmsg(n - len(data), socket.CMSG_SPACE(256))
            for level, kind, fds in ancdata:  # guest memory and eventfds: not used
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    for i in range(0, len(fds) - len(fds) % 4, 4):
                        os.close(int.from_bytes(fds[i : i + 4], "little"))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def serve(self) -> None:
        self.conn, _ = self.srv.accept()
        self.srv.close()
        with self.conn:
            try:
                while True:
                    request, _, size = struct.unpack("<III", self._recv(12))
                    body = self._recv(size) if size else b""
                    if request in self.REPLIES:
                        payload = self.REPLIES[request](body)
                        head = struct.pack("<III", request, 0x5, len(payload))  # v1, reply
                        self.conn.sendall(head + payload)
            except (EOFError, OSError):
                return


def _probe(tmp: Path) -> bytes:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the probe init cannot be compiled")
    out = tmp / "nsm_probe"
    cmd = ["gcc", "-static", "-O2", "-o", str(out), str(HERE / "nsm_probe.c")]
    if subprocess.run(cmd, capture_output=True, timeout=GUARD, check=False).returncode != 0:
        pytest.skip("gcc cannot link a static program here")
    return out.read_bytes()


def _eif(
    tmp: Path, kernel: Path, init: bytes, signer: tuple[bytes, ec.EllipticCurvePrivateKey]
) -> Measurements:
    ramdisks = [
        [
            CpioEntry.directory("dev"),
            CpioEntry(name="init", mode=stat.S_IFREG | 0o755, size=len(init), data=init),
        ],
        [CpioEntry(name="app", mode=stat.S_IFREG | 0o644, size=3, data=b"hi\n")],
    ]
    sections = [
        SectionSource.from_bytes(SectionType.KERNEL, kernel.read_bytes()),
        SectionSource.from_bytes(SectionType.CMDLINE, CMDLINE),
        *(SectionSource.from_bytes(SectionType.RAMDISK, build_archive(r)) for r in ramdisks),
    ]
    with (tmp / "probe.eif").open("w+b") as f:
        write_eif(f, sections)
        f.seek(0)
        return sign_image(f, *signer).measurements


def _eif_signer() -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "eif signer")])
    now = datetime.now(tz=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now.replace(year=now.year - 1))
        .not_valid_after(now.replace(year=now.year + 1))
        .sign(key, hashes.SHA384())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key


def _boot(qemu: Path, tmp: Path, *args: str) -> list[bytes]:
    sock, console = tmp / "vsock.sock", tmp / "console.log"
    threading.Thread(target=_VhostUserStub(sock).serve, daemon=True).start()
    cmd = [str(qemu), "-M", f"nitro-enclave,vsock=vs0,id={MODULE_ID}", "-accel", "tcg"]
    cmd += ["-cpu", "max", "-m", "512", "-smp", "2", "-display", "none", "-monitor", "none"]
    cmd += ["-serial", f"file:{console}", "-no-reboot", "-chardev", f"socket,id=vs0,path={sock}"]
    cmd += [*args, "-kernel", str(tmp / "probe.eif")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=GUARD, check=False)
    assert done.returncode == 0, done.stderr
    lines = console.read_text(errors="replace").splitlines()
    answers = [cbor2.loads(bytes.fromhex(x.split()[1])) for x in lines if x.startswith("NSMRESP ")]
    docs = [a["Attestation"]["document"] for a in answers]
    assert len(docs) == 2, console.read_text(errors="replace")[-2000:]
    return docs


@pytest.fixture(scope="module")
def guest(qemu: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Measurements]:
    kernel = _tool("NB_KERNEL", "kernel")
    tmp = tmp_path_factory.mktemp("guest")
    return tmp, _eif(tmp, kernel, _probe(tmp), _eif_signer())


def test_signed_documents_verify_with_the_simulated_root(
    qemu: Path, pki: Path, guest: tuple[Path, Measurements]
) -> None:
    tmp, measurements = guest
    files = (pki / "intermediate.key", pki / "intermediate.pem", pki / "root.pem")
    docs = _boot(qemu, tmp, *_signing(*files))
    root = (pki / "root.pem").read_bytes()
    verified = [verify_attestation(d, root=root, at=datetime.now(tz=UTC)) for d in docs]
    for doc in verified:
        assert doc.module_id == MODULE_ID
        assert doc.user_data == b"user"
        assert doc.nonce == bytes(range(1, 9))
        assert doc.public_key is None
        assert doc.pcrs[0] == measurements.pcr0
        assert doc.pcrs[1] == measurements.pcr1
        assert doc.pcrs[2] == measurements.pcr2
        assert doc.pcrs[8] == measurements.pcr8
        assert doc.pcrs[3] == bytes(48)
    # A fresh leaf per document, as the real NSM does.
    assert verified[0].certificate != verified[1].certificate


def test_unsigned_device_documents_are_refused(
    qemu: Path, pki: Path, guest: tuple[Path, Measurements]
) -> None:
    tmp, _ = guest
    docs = _boot(qemu, tmp)
    # Upstream's shape: alg -1 and 64 zero bytes; the verifier refuses it.
    protected, _, _, signature = cbor2.loads(docs[0])
    assert cbor2.loads(protected) == {1: -1}
    assert signature == bytes(64)
    with pytest.raises(AttestationError):
        verify_attestation(docs[0], root=(pki / "root.pem").read_bytes(), at=datetime.now(tz=UTC))
