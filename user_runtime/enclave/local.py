# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime enclave start/stop/status`: the local enclave, or nitro-cli on a Nitro host.

Local mode runs in one of two worlds (specs/qemu-backend.md §8, threat-model.md §6). The
image's world, when the image has an interpreter of its own and the host allows namespaces:
the image's customer ramdisk unpacked into the cache (`rootfs`), entered read-only in
fresh mount, network and PID namespaces (`enter`), running the command the image
records with only its transport swapped (`world`). The host's world otherwise, with a
warning: the server's code and enclave.json read out of the EIF's customer ramdisk (what PCR2
measures) into a private RAM-backed directory and started with the host's Python, in new
network and PID namespaces when the kernel allows it and, when root, a mount namespace whose
private tmpfs holds its work directory (threat-model.md §4). Either way the simulated NSM
reports the image's PCRs (zeros with --debug-mode), and KMS is reached through a relay: a Unix
socket that a host process forwards to the KMS front, the local equivalent of vsock-proxy.
On a Nitro host the same command drives `nitro-cli run-enclave`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from user_runtime.enclave.files import (
    ImageContents,
    read_image,
    wipe_tree,
)
from user_runtime.enclave.procs import (
    START_TIMEOUT,
    EnclaveStartError,
    _is_our_process,
    _last_text_line,
    _terminate_group,
    _wait_ready,
)
from user_runtime.enclave.rootfs import image_root
from user_runtime.enclave.state import STATE_FILE, resolve_state_dir  # noqa: F401 - re-exported
from user_runtime.enclave.world import (
    IO_AT,
    PKI_AT,
    _can_isolate,
    _can_mount_private,
    _lay_out,
    _make_ram_dir,
    _private_mount_argv,
    choose_world,
    enter_argv,
    host_world_warning,
    image_command,
    image_environment,
)
from user_runtime.errors import ExternalError, InputError, UsageError

SOCKET_NAME = "enclave.sock"
KMS_SOCKET_NAME = "kms.sock"
IO_DIR = "io"  # the image world's socket directory, bound at IO_AT
LOG_NAME = "enclave.log"
VSOCK_PORT = 5005


class EnclaveRunningError(ExternalError):
    """An enclave is already running for this state directory."""


class NoEnclaveError(InputError):
    """No enclave is running for this state directory."""


@dataclass(frozen=True)
class EnclaveState:
    """What `enclave status` reports and `run` uses (stored as state.json)."""

    mode: str
    address: str
    image: str
    pcrs: dict[str, str]
    debug: bool
    pid: int | None = None
    relay_pid: int | None = None
    ram_dir: str | None = None
    enclave_id: str | None = None
    cid: int | None = None
    network_isolated: bool = False
    private_mount: bool = False
    started: float = field(default_factory=time.time)
    helper_pids: list[int] = field(default_factory=list)
    accel: str | None = None
    console_log: str | None = None
    world: str = "host"
    rootfs: str | None = None
    rootfs_seconds: float | None = None
    rootfs_extracted: bool | None = None


@dataclass(frozen=True)
class StartOptions:
    """The flags of `enclave start`."""

    eif: Path
    state_dir: Path
    debug: bool = False
    memory_mib: int = 2048
    cpu_count: int = 2
    kms_endpoint: str | None = None
    backend: str = "auto"
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def nitro_available() -> bool:
    """Whether this host can run real enclaves (/dev/nitro_enclaves and nitro-cli)."""
    return Path("/dev/nitro_enclaves").exists() and shutil.which("nitro-cli") is not None


def read_state(state_dir: Path) -> EnclaveState | None:
    """The recorded state, or None.

    Raises:
        InputError: state.json exists but is damaged.
    """
    path = state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return EnclaveState(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: damaged enclave state ({exc}); remove it") from exc


def is_alive(state: EnclaveState) -> bool:
    """Whether the recorded enclave still runs (pid checked against its command line)."""
    if state.mode == "nitro":
        return _nitro_running(state.enclave_id)
    marker = "nitro-enclave" if state.mode == "qemu" else "enclave"
    return state.pid is not None and _is_our_process(state.pid, marker)


def start(opts: StartOptions) -> tuple[EnclaveState, list[str]]:
    """Start an enclave from `opts.eif`; return its state and warnings for the user.

    Raises:
        EnclaveRunningError: One is already running for this state directory.
        InputError: The image is unreadable or lacks the enclave server.
        EnclaveStartError: The process did not come up.
    """
    state_dir = opts.state_dir
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    previous = read_state(state_dir)
    if previous is not None:
        if is_alive(previous):
            raise EnclaveRunningError(
                f"an enclave is already running ({previous.address}); stop it first"
            )
        cleanup(state_dir, previous)
    backend = opts.backend
    if backend == "auto":
        backend = "nitro" if nitro_available() else "local"
    if backend == "qemu":
        from user_runtime.enclave.qemu import start_qemu  # noqa: PLC0415

        return start_qemu(opts)
    if backend == "nitro":
        if not nitro_available():
            raise UsageError("--backend nitro: no /dev/nitro_enclaves or nitro-cli on this host")
        return _start_nitro(opts), []
    if backend != "local":
        raise UsageError(f"--backend {backend!r}: expected auto, local, qemu or nitro")
    return _start_local(opts)


def stop(state_dir: Path) -> EnclaveState:
    """Stop the enclave and wipe its RAM directory; return the state it had.

    Raises:
        NoEnclaveError: No enclave is recorded.
    """
    state = read_state(state_dir)
    if state is None:
        raise NoEnclaveError(f"no enclave is running (state dir {state_dir.parent})")
    cleanup(state_dir, state)
    return state


def cleanup(state_dir: Path, state: EnclaveState) -> None:
    """End every process of `state`, wipe its RAM directory, remove its files."""
    if state.mode == "nitro":
        if state.enclave_id and _nitro_running(state.enclave_id):
            subprocess.run(
                ["nitro-cli", "terminate-enclave", "--enclave-id", state.enclave_id],
                capture_output=True,
                check=False,
            )
    elif state.mode == "qemu":
        from user_runtime.enclave.qemu import cleanup_qemu  # noqa: PLC0415

        cleanup_qemu(state_dir, state)
    else:
        for pid, what in ((state.pid, "enclave"), (state.relay_pid, "enclave.relay")):
            if pid is not None and _is_our_process(pid, what):
                _terminate_group(pid)
        if state.ram_dir:
            wipe_tree(Path(state.ram_dir))
    for name in (
        STATE_FILE,
        SOCKET_NAME,
        KMS_SOCKET_NAME,
        f"{IO_DIR}/{SOCKET_NAME}",
        f"{IO_DIR}/{KMS_SOCKET_NAME}",
    ):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()
    with contextlib.suppress(OSError):
        (state_dir / IO_DIR).rmdir()


# -- local mode ---------------------------------------------------------------------------


def _start_local(opts: StartOptions) -> tuple[EnclaveState, list[str]]:
    warnings: list[str] = []
    image = read_image(opts.eif)
    env = opts.environ
    stack = _read_stack(opts.state_dir.parent)
    pki_dir = env.get("NB_SIM_PKI_DIR") or (
        str(Path(stack["nsm_root_pem"]).parent) if stack.get("nsm_root_pem") else None
    )
    if not pki_dir:
        raise InputError("no simulated nsm pki: start the local stack or set NB_SIM_PKI_DIR")
    isolate = _can_isolate()
    private = isolate and _can_mount_private(opts.state_dir)
    if choose_world(image, env, can_enter=private) == "image":
        return _start_image_world(opts, image, stack, pki_dir), warnings
    warnings.append(host_world_warning(image, env, can_enter=private))
    if not isolate:
        warnings.append(
            "no network namespace (needs root and unshare): the enclave process shares "
            "the host network"
        )
    ram_dir = _make_ram_dir(opts.state_dir, warnings)
    relay_pid: int | None = None
    try:
        code, config, work = _lay_out(ram_dir, image)
        relay_pid, target = _start_relay(opts, env, stack)
        child_env = _enclave_env(opts, image, env=env, stack=stack, pki_dir=pki_dir)
        child_env["PATH"] = env.get("PATH", "/usr/bin:/bin")
        child_env["LANG"] = "C.UTF-8"
        child_env["PYTHONPATH"] = str(code)
        child_env["PYTHONDONTWRITEBYTECODE"] = "1"
        if target:
            child_env["NB_KMS_TARGET"] = target
        sock = opts.state_dir / SOCKET_NAME
        argv = [sys.executable, "-m", "enclave", "serve", "--unix", str(sock)]
        argv += ["--config", str(config), "--workdir", str(work)]
        argv += ["--memory-budget", f"{opts.memory_mib}M"]
        if private:
            argv = _private_mount_argv(work, opts.memory_mib, argv)
        if isolate:
            ns = ["--net", "--pid", *(["--mount", "--propagation", "private"] if private else [])]
            argv = ["unshare", *ns, "--fork", "--kill-child", "--", *argv]
        state = EnclaveState(
            mode="local",
            address=f"unix:{sock}",
            image=str(opts.eif.absolute()),
            pcrs=_pcrs_json(image, debug=opts.debug),
            debug=opts.debug,
            relay_pid=relay_pid,
            ram_dir=str(ram_dir),
            network_isolated=isolate,
            private_mount=private,
        )
        _launch(opts, argv, child_env, state, cwd=ram_dir)
    except BaseException:
        _undo(opts.state_dir, relay_pid, ram_dir)
        raise
    return read_state(opts.state_dir) or state, warnings


def _start_image_world(
    opts: StartOptions, image: ImageContents, stack: Mapping[str, Any], pki_dir: str
) -> EnclaveState:
    """The image's own command in its own tree (specs/qemu-backend.md §8)."""
    from user_runtime.enclave.qemu import cache_dir  # noqa: PLC0415

    cmd, workdir = image_command(image, memory_mib=opts.memory_mib)
    root = image_root(opts.eif, image, cache_dir(opts.environ))
    io = opts.state_dir / IO_DIR
    io.mkdir(mode=0o700, exist_ok=True)
    relay_pid: int | None = None
    try:
        relay_pid, target = _start_relay(opts, opts.environ, stack, io / KMS_SOCKET_NAME)
        added = _enclave_env(opts, image, env=opts.environ, stack=stack, pki_dir=PKI_AT)
        kms = f"{IO_AT}/{KMS_SOCKET_NAME}" if target else None
        env = image_environment(image, added, kms_socket=kms)
        argv = enter_argv(
            root.rootfs, cmd, env, workdir=workdir, memory_mib=opts.memory_mib, io=io, pki=pki_dir
        )
        argv[-1] = json.dumps({**json.loads(argv[-1]), "lock_fd": root.lock})
        state = EnclaveState(
            mode="local",
            address=f"unix:{io / SOCKET_NAME}",
            image=str(opts.eif.absolute()),
            pcrs=_pcrs_json(image, debug=opts.debug),
            debug=opts.debug,
            relay_pid=relay_pid,
            network_isolated=True,
            private_mount=True,
            world="image",
            rootfs=str(root.path),
            rootfs_seconds=round(root.seconds, 3),
            rootfs_extracted=root.extracted,
        )
        # The cache entry's lock lives as long as the enclave (held by unshare's parent).
        path_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        _launch(opts, argv, path_env, state, cwd=io, pass_fds=(root.lock,))
    except BaseException:
        _undo(opts.state_dir, relay_pid, None)
        raise
    finally:
        os.close(root.lock)
    return read_state(opts.state_dir) or state


def _launch(
    opts: StartOptions,
    argv: list[str],
    env: dict[str, str],
    state: EnclaveState,
    *,
    cwd: Path,
    pass_fds: tuple[int, ...] = (),
) -> None:
    """Start `argv` in its own session, record its state, wait until its socket accepts."""
    with (opts.state_dir / LOG_NAME).open("wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    _write_state(opts.state_dir, replace(state, pid=proc.pid))
    _wait_ready(proc, Path(state.address[len("unix:") :]), opts.state_dir / LOG_NAME)


def _undo(state_dir: Path, relay_pid: int | None, ram_dir: Path | None) -> None:
    partial = read_state(state_dir)
    if partial is not None:
        cleanup(state_dir, partial)
        return
    if relay_pid is not None:
        _terminate_group(relay_pid)
    if ram_dir is not None:
        wipe_tree(ram_dir)


def _enclave_env(
    opts: StartOptions,
    image: ImageContents,
    *,
    env: Mapping[str, str],
    stack: Mapping[str, Any],
    pki_dir: str,
) -> dict[str, str]:
    """What the local host adds to the server's environment: the simulated NSM, credentials."""
    child = {
        "NB_NSM": "simulated",
        "NB_SIM_PKI_DIR": pki_dir,
        "NB_SIM_PCRS": json.dumps({str(k): v.hex() for k, v in image.pcrs.items()}),
    }
    if opts.debug:
        child["NB_SIM_DEBUG"] = "1"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if env.get(name):
            child[name] = env[name]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or stack.get("region")
    if region:
        child["AWS_REGION"] = str(region)
    for name in ("NB_KEY_CACHE_SECONDS", "NB_RECEIPTS"):  # NB_RECEIPTS=0: benchmarks only
        if env.get(name):
            child[name] = env[name]
    return child


def _start_relay(
    opts: StartOptions,
    env: Mapping[str, str],
    stack: Mapping[str, Any],
    sock: Path | None = None,
) -> tuple[int | None, str | None]:
    from urllib.parse import urlsplit  # noqa: PLC0415

    url = opts.kms_endpoint or env.get("AWS_ENDPOINT_URL_KMS") or stack.get("kms_url")
    if not url:
        return None, None
    parts = urlsplit(str(url))
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"kms endpoint {url!r}: the local enclave relays plain http only")
    sock = sock or opts.state_dir / KMS_SOCKET_NAME
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    argv = [sys.executable, "-m", "user_runtime.enclave.relay", str(sock), parts.hostname]
    argv.append(str(parts.port or 80))
    relay = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not sock.exists():
        if relay.poll() is not None or time.monotonic() > deadline:
            _terminate_group(relay.pid)
            raise EnclaveStartError("the kms relay did not start")
        time.sleep(0.02)
    return relay.pid, f"unix:{sock}"


# -- nitro mode ---------------------------------------------------------------------------


def _start_nitro(opts: StartOptions) -> EnclaveState:
    image = read_image(opts.eif)
    argv = ["nitro-cli", "run-enclave", "--eif-path", str(opts.eif)]
    argv += ["--memory", str(opts.memory_mib), "--cpu-count", str(opts.cpu_count)]
    if opts.debug:
        argv.append("--debug-mode")
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise EnclaveStartError(f"nitro-cli run-enclave failed: {_last_text_line(proc.stderr)}")
    try:
        info = json.loads(proc.stdout)
        enclave_id, cid = str(info["EnclaveID"]), int(info["EnclaveCID"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EnclaveStartError("nitro-cli run-enclave printed no enclave id and cid") from exc
    state = EnclaveState(
        mode="nitro",
        address=f"vsock:{cid}:{VSOCK_PORT}",
        image=str(opts.eif.absolute()),
        pcrs=_pcrs_json(image, debug=opts.debug),
        debug=opts.debug,
        enclave_id=enclave_id,
        cid=cid,
        network_isolated=True,
    )
    _write_state(opts.state_dir, state)
    return state


def _nitro_running(enclave_id: str | None) -> bool:
    if not enclave_id or shutil.which("nitro-cli") is None:
        return False
    proc = subprocess.run(
        ["nitro-cli", "describe-enclaves"], capture_output=True, text=True, check=False
    )
    try:
        return any(e.get("EnclaveID") == enclave_id for e in json.loads(proc.stdout or "[]"))
    except (ValueError, AttributeError):
        return False


# -- helpers ------------------------------------------------------------------------------


def _pcrs_json(image: ImageContents, *, debug: bool) -> dict[str, str]:
    zero = bytes(48).hex()
    out = {f"PCR{k}": v.hex() for k, v in sorted(image.pcrs.items())}
    if debug:
        out = {k: (zero if k in {"PCR0", "PCR1", "PCR2", "PCR8"} else v) for k, v in out.items()}
    return out


def _read_stack(base: Path) -> dict[str, Any]:
    try:
        data = json.loads((base / "stack.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(state_dir: Path, state: EnclaveState) -> None:
    tmp = state_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(state), out, indent=2, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(state_dir / STATE_FILE)
