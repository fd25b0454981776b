# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`enclave start --backend qemu`: the image `build-eif` wrote, booted in QEMU's nitro-enclave.

specs/qemu-backend.md. The production code path on any Linux machine: QEMU loads the EIF (its
own kernel, init and rootfs), emulates the NSM (signing attestation documents with the local
stack's NSM chain, specs/qemu-nsm.md) and talks vsock through our vhost-user back-end
(`python -m user_runtime.vsock`, specs/vsock.md). Host processes, each in its own session:

| process | listens on | does |
|---|---|---|
| vsock back-end | `vhost.sock` (QEMU), `vsock.sock` (host) | guest port P <-> `vsock.sock_P` |
| heartbeat | `vsock.sock_9000` | answers init's 0xB7 (Nitro's contract) |
| KMS relay | `vsock.sock_8000` | the enclave's KMS connections -> the KMS front (vsock-proxy) |
| QEMU | — | the enclave; console in `console.log` |

The RPC address is `uds-vsock:<state>/vsock.sock:5005`. KVM is tried first when /dev/kvm opens
(`NB_QEMU_ACCEL=auto`, the default); a guest that does not reach its heartbeat under KVM within
`KVM_HEARTBEAT_TIMEOUT` is restarted under TCG (`-cpu max`). `enclave status` says which.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from user_runtime.enclave.files import read_image
from user_runtime.enclave.procs import (
    EnclaveStartError,
    _is_our_process,
    _last_line,
    _start_relay,
    _terminate_group,
)
from user_runtime.enclave.record import (
    EnclaveState,
    StartOptions,
    _read_stack,
    _write_state,
    image_state,
    remove_files,
)
from user_runtime.enclave.rootfs import cache_dir
from user_runtime.errors import InputError, UsageError

VHOST_SOCKET = "vhost.sock"
MUX_SOCKET = "vsock.sock"
CONSOLE_LOG = "console.log"
QEMU_LOG = "qemu.log"
VSOCK_LOG = "vsock.log"
HEARTBEAT_MARK = "heartbeat"
GUEST_CID = 16
SERVER_PORT = 5005  # specs/enclave-image.md §5.3
HEARTBEAT_PORT = 9000
KMS_PORT = 8000
KVM_HEARTBEAT_TIMEOUT = 45.0
BOOT_TIMEOUT = 900.0  # TCG on a loaded 2-core machine unpacks a large rootfs slowly
QEMU_ENV = "NB_QEMU"
ACCEL_ENV = "NB_QEMU_ACCEL"
KVM_PROBE = "qemu-kvm-probe.json"
_MARKER = "nitro-enclave"


class QemuMissingError(InputError):
    """No QEMU with the nitro-enclave machine was found (build it: make enclave-toolchain)."""


def find_qemu(environ: Mapping[str, str]) -> Path:
    """`$NB_QEMU`, else the toolchain cache's QEMU, else `qemu-system-x86_64` on PATH.

    Raises:
        QemuMissingError: none is there.
    """
    if environ.get(QEMU_ENV):
        path = Path(environ[QEMU_ENV])
        if not os.access(path, os.X_OK):
            raise QemuMissingError(f"{QEMU_ENV}={path}: not an executable")
        return path
    current = cache_dir(environ) / "toolchain" / "current.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        path = Path(json.loads(current.read_text(encoding="utf-8"))["qemu"]["bin"])
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("qemu-system-x86_64")
    if found is None:
        raise QemuMissingError(
            "no qemu with the nitro-enclave machine: run `make enclave-toolchain` or set NB_QEMU"
        )
    return Path(found)


def _accels(environ: Mapping[str, str], qemu: Path) -> list[str]:
    choice = environ.get(ACCEL_ENV, "auto")
    if choice in {"kvm", "tcg"}:
        return [choice]
    if choice != "auto":
        raise UsageError(f"{ACCEL_ENV}={choice!r}: expected auto, kvm or tcg")
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return ["tcg"]
    os.close(fd)
    if _kvm_probe(environ, qemu) is False:
        return ["tcg"]  # KVM opened but did not boot the image before, on this host
    return ["kvm", "tcg"]


def _probe_key(qemu: Path) -> str:
    return f"{qemu.resolve()}|{os.uname().release}"


def _kvm_probe(environ: Mapping[str, str], qemu: Path) -> bool | None:
    """What an earlier start learnt: whether KVM boots images with this QEMU on this kernel."""
    try:
        record = json.loads((cache_dir(environ) / KVM_PROBE).read_text(encoding="utf-8"))
        return bool(record[_probe_key(qemu)])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record_kvm_probe(environ: Mapping[str, str], qemu: Path, *, works: bool) -> None:
    path = cache_dir(environ) / KVM_PROBE
    with contextlib.suppress(OSError, ValueError, TypeError):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            record = {}
        record[_probe_key(qemu)] = works
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
        tmp.replace(path)


def start_qemu(opts: StartOptions) -> tuple[EnclaveState, list[str]]:
    """Boot `opts.eif` in QEMU; return its state once the server answers, and warnings.

    Raises:
        QemuMissingError: no QEMU.
        InputError: the image is unreadable or carries no server.
        EnclaveStartError: the guest did not boot, crashed, or its server never answered
            (the message names the log to read).
    """
    env = opts.environ
    qemu = find_qemu(env)
    image = read_image(opts.eif)
    sd = opts.state_dir
    warnings: list[str] = []
    stack = _read_stack(sd.parent)
    for name in (HEARTBEAT_MARK, CONSOLE_LOG, QEMU_LOG, VSOCK_LOG):
        with contextlib.suppress(FileNotFoundError):
            (sd / name).unlink()
    helpers: list[int] = []
    state: EnclaveState | None = None
    try:
        relay_pid, _ = _start_relay(opts, env, stack, sd / f"{MUX_SOCKET}_{KMS_PORT}")
        if relay_pid is None:
            warnings.append("no kms endpoint: the enclave cannot release keys")
        else:
            helpers.append(relay_pid)
        helpers.append(_spawn_heartbeat(sd))
        signing = _nsm_signing_args(stack, warnings)
        for accel in _accels(env, qemu):
            vsock_pid = _spawn_vsock(sd)
            qemu_proc = _spawn_qemu(qemu, opts, accel, signing)
            state = _state(opts, image, qemu_proc.pid, accel, [*helpers, vsock_pid])
            _write_state(sd, state)
            timeout = KVM_HEARTBEAT_TIMEOUT if accel == "kvm" else BOOT_TIMEOUT
            booted = _wait_heartbeat(qemu_proc, sd, timeout, last=accel == "tcg")
            if accel == "kvm":
                _record_kvm_probe(env, qemu, works=booted)
            if booted:
                break
            warnings.append("kvm did not boot the image here; fell back to tcg (slower)")
            _terminate_group(qemu_proc.pid)
            _terminate_group(vsock_pid)
        assert state is not None
        _wait_server(state, qemu_proc, sd)
        _send_credentials(state.address, env, stack)
    except BaseException:
        if state is not None:  # the processes, the sockets and state.json
            cleanup_qemu(sd, state)
            remove_files(sd)
        for pid in helpers:
            _terminate_group(pid)
        raise
    return state, warnings


def cleanup_qemu(state_dir: Path, state: EnclaveState) -> None:
    """Stop QEMU and every helper process; remove the sockets."""
    if state.pid is not None and _is_our_process(state.pid, _MARKER):
        _terminate_group(state.pid)
    for pid in state.helper_pids:
        if _is_our_process(pid, "user_runtime"):
            _terminate_group(pid)
    for path in state_dir.glob(f"{MUX_SOCKET}*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    with contextlib.suppress(FileNotFoundError):
        (state_dir / VHOST_SOCKET).unlink()


def _state(
    opts: StartOptions, image: Any, pid: int, accel: str, helpers: list[int]
) -> EnclaveState:
    return replace(
        image_state(opts, image, "qemu", f"uds-vsock:{opts.state_dir / MUX_SOCKET}:{SERVER_PORT}"),
        pid=pid,
        cid=GUEST_CID,
        network_isolated=True,
        helper_pids=helpers,
        accel=accel,
        console_log=str(opts.state_dir / CONSOLE_LOG),
    )


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def _spawn_heartbeat(sd: Path) -> int:
    sock = sd / f"{MUX_SOCKET}_{HEARTBEAT_PORT}"
    argv = [sys.executable, "-m", "user_runtime.enclave.heartbeat", str(sock)]
    proc = _spawn([*argv, str(sd / HEARTBEAT_MARK)], sd / VSOCK_LOG)
    _wait_for_path(sock, proc, "the heartbeat listener")
    return proc.pid


def _spawn_vsock(sd: Path) -> int:
    vhost = sd / VHOST_SOCKET
    with contextlib.suppress(FileNotFoundError):
        vhost.unlink()
    argv = [sys.executable, "-m", "user_runtime.vsock", "--socket", str(vhost)]
    argv += ["--uds-path", str(sd / MUX_SOCKET), "--guest-cid", str(GUEST_CID)]
    proc = _spawn(argv, sd / VSOCK_LOG)
    _wait_for_path(vhost, proc, "the vsock back-end")
    return proc.pid


def _wait_for_path(path: Path, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30.0
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            _terminate_group(proc.pid)
            raise EnclaveStartError(f"{what} did not start (log: {path.parent / VSOCK_LOG})")
        time.sleep(0.02)


def _spawn_qemu(
    qemu: Path, opts: StartOptions, accel: str, signing: list[str]
) -> subprocess.Popen[bytes]:
    sd = opts.state_dir
    # An AWS-shaped module id: the document's module_id (qemu-nsm.md §6).
    name = f"i-{secrets.token_hex(9)[:17]}-enc{secrets.token_hex(8)}"
    argv = [str(qemu), "-M", f"nitro-enclave,vsock=vsock0,id={name}"]
    argv += ["-kernel", str(opts.eif.absolute()), "-m", f"{opts.memory_mib}M"]
    argv += ["-smp", str(opts.cpu_count), "-accel", accel]
    argv += ["-cpu", "max"]
    argv += ["-chardev", f"socket,id=vsock0,path={sd / VHOST_SOCKET}"]
    argv += ["-display", "none", "-monitor", "none", "-no-reboot"]
    argv += ["-serial", f"file:{sd / CONSOLE_LOG}", *signing]
    return _spawn(argv, sd / QEMU_LOG)


def _wait_heartbeat(proc: subprocess.Popen[bytes], sd: Path, timeout: float, *, last: bool) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (sd / HEARTBEAT_MARK).exists():
            return True
        if proc.poll() is not None:
            if not last:
                return False
            raise EnclaveStartError(
                f"qemu exited before the enclave's init reported ({_last_line(sd / QEMU_LOG)});"
                f" console: {sd / CONSOLE_LOG}"
            )
        time.sleep(0.1)
    if not last:
        return False
    raise EnclaveStartError(
        f"the enclave's init sent no heartbeat within {timeout:.0f} s; console: {sd / CONSOLE_LOG}"
    )


def _wait_server(state: EnclaveState, proc: subprocess.Popen[bytes], sd: Path) -> None:
    from user_runtime.rpc.client import EnclaveClient  # noqa: PLC0415
    from user_runtime.rpc.values import EnclaveUnavailableError  # noqa: PLC0415

    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EnclaveStartError(
                f"the enclave powered off at start ({_console_tail(sd)}); console: "
                f"{sd / CONSOLE_LOG}"
            )
        try:
            client = EnclaveClient.connect(state.address, timeout=5.0)
        except EnclaveUnavailableError:
            time.sleep(0.5)
            continue
        client.close()
        return
    raise EnclaveStartError(
        f"the enclave server did not answer within {BOOT_TIMEOUT:.0f} s; console: "
        f"{sd / CONSOLE_LOG}"
    )


def _console_tail(sd: Path) -> str:
    return _last_line(sd / CONSOLE_LOG)


def _send_credentials(address: str, env: Mapping[str, str], stack: Mapping[str, Any]) -> None:
    """Hand the enclave the KMS credentials the local backend passes in its environment."""
    access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        return
    from user_runtime.rpc.client import EnclaveClient  # noqa: PLC0415

    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or stack.get("region") or ""
    with contextlib.closing(EnclaveClient.connect(address)) as client:
        client.set_credentials(access, secret, env.get("AWS_SESSION_TOKEN") or "", str(region))


def _nsm_signing_args(stack: Mapping[str, Any], warnings: list[str]) -> list[str]:
    """QEMU's virtio-nsm signs with the stack's NSM intermediate (CA mode, qemu-nsm.md §3).

    Like the real NSM, QEMU then mints a fresh 3-hour leaf for every document, chained to the
    root the KMS front pins.
    """
    root_pem = stack.get("nsm_root_pem")
    if not root_pem:
        warnings.append(
            "no local stack nsm pki: attestation documents are unsigned and kms will refuse them"
        )
        return []
    pki = Path(str(root_pem)).parent
    files = {
        "signing-key": pki / "intermediate.key",
        "signing-cert": pki / "intermediate.pem",
        "cabundle": pki / "root.pem",
    }
    return [
        arg
        for prop, path in files.items()
        for arg in ("-global", f"virtio-nsm-device.{prop}={path}")
    ]
