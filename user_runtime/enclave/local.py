# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`enclave start --backend local`: the image run on this host, without a VM.

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
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from user_runtime.enclave.files import (
    ImageContents,
    read_image,
    wipe_tree,
)
from user_runtime.enclave.procs import (
    _is_our_process,
    _start_relay,
    _terminate_group,
    _wait_ready,
)
from user_runtime.enclave.record import (
    IO_DIR,
    KMS_SOCKET_NAME,
    LOG_NAME,
    SOCKET_NAME,
    EnclaveState,
    StartOptions,
    _read_stack,
    _write_state,
    image_state,
    read_state,
    remove_files,
)
from user_runtime.enclave.rootfs import cache_dir, image_root
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
from user_runtime.errors import InputError


def start_local(opts: StartOptions) -> tuple[EnclaveState, list[str]]:
    """Start the image's server on this host; return its state and warnings for the user."""
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
        state = replace(
            image_state(opts, image, "local", f"unix:{sock}"),
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


def cleanup_local(state: EnclaveState) -> None:
    """End the server and the KMS relay of `state`; wipe its RAM directory."""
    for pid, what in ((state.pid, "enclave"), (state.relay_pid, "user_runtime.enclave.relay")):
        if pid is not None and _is_our_process(pid, what):
            _terminate_group(pid)
    if state.ram_dir:
        wipe_tree(Path(state.ram_dir))


def _start_image_world(
    opts: StartOptions, image: ImageContents, stack: Mapping[str, Any], pki_dir: str
) -> EnclaveState:
    """The image's own command in its own tree (specs/qemu-backend.md §8)."""
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
        state = replace(
            image_state(opts, image, "local", f"unix:{io / SOCKET_NAME}"),
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
        cleanup_local(partial)
        remove_files(state_dir)
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
