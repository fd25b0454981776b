# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Which world the local enclave runs in, and the image's own command for it (qemu-backend.md §8).

`image`: the image's unpacked tree (`rootfs`), entered by `enter`, running the
command the image records (`cmd`, `env`) with only the transport swapped: `--vsock PORT`
becomes `--unix <io>/enclave.sock`, `NB_KMS_TARGET` the relay's Unix socket, the simulated
NSM's variables are added, and `--memory-budget` follows `--memory`. `host`: the earlier mode,
the image's server code on the host's Python (an image with no interpreter of its own, or a
host without root and namespaces), announced by a warning.

`NB_LOCAL_WORLD` chooses: `auto` (default: image when possible), `image` (refuse otherwise),
`host` (benchmarks compare the two).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from user_runtime.enclave.files import ImageContentError, ImageContents, write_private
from user_runtime.enclave.rootfs import interpreter_problem
from user_runtime.errors import UsageError

WORLD_ENV = "NB_LOCAL_WORLD"
#: Where the host side's directories appear inside the tree (fresh tmpfs `/run`).
IO_AT = "/run/nitro-bundles-io"
PKI_AT = "/run/nitro-bundles-nsm"
DEFAULT_WORKDIR = "/run/nitro-bundles"
ENTER = Path(__file__).with_name("enter.py")


class WorldUnavailableError(ImageContentError):
    """`NB_LOCAL_WORLD=image`, but the image or the host cannot run the image's own world."""


def choose_world(image: ImageContents, environ: Mapping[str, str], *, can_enter: bool) -> str:
    """`image` or `host`; raises when `image` is demanded and impossible.

    Raises:
        UsageError: `NB_LOCAL_WORLD` has another value.
        WorldUnavailableError: `image` demanded, but the image has no interpreter of its own
            or the host cannot make the namespaces.
    """
    wanted = environ.get(WORLD_ENV, "auto")
    if wanted not in {"auto", "image", "host"}:
        raise UsageError(f"{WORLD_ENV}={wanted!r}: expected auto, image or host")
    if wanted == "host":
        return "host"
    problem = host_or_image_problem(image, can_enter=can_enter)
    if problem is None:
        return "image"
    if wanted == "image":
        raise WorldUnavailableError(f"{WORLD_ENV}=image: {problem}")
    return "host"


def host_or_image_problem(image: ImageContents, *, can_enter: bool) -> str | None:
    """Why the image's own world cannot be entered here, or None."""
    problem = interpreter_problem(image)
    if problem is None and not can_enter:
        problem = "no mount namespace here (needs root and unshare)"
    return problem


def host_world_warning(image: ImageContents, environ: Mapping[str, str], *, can_enter: bool) -> str:
    """The one line `enclave start` prints when the server runs on the host's Python."""
    if environ.get(WORLD_ENV) == "host":
        why = f"{WORLD_ENV}=host"
    else:
        why = host_or_image_problem(image, can_enter=can_enter) or "unknown"
    return (
        f"{why}: the enclave server and entrypoints run on the host's Python, not in the "
        "image's own rootfs, so what passes here may fail on qemu and nitro"
    )


def image_command(image: ImageContents, *, memory_mib: int) -> tuple[list[str], str]:
    """The image's `cmd` with its transport swapped; and its work directory.

    Raises:
        ImageContentError: the command has no `--vsock PORT` to swap.
    """
    cmd = list(image.cmd)
    try:
        at = cmd.index("--vsock")
    except ValueError:
        raise ImageContentError(
            f"the image's command has no --vsock PORT to swap: {shlex.join(cmd)}"
        ) from None
    if at + 1 >= len(cmd):
        raise ImageContentError("the image's command ends with --vsock and no port")
    cmd[at : at + 2] = ["--unix", f"{IO_AT}/enclave.sock"]
    workdir = DEFAULT_WORKDIR
    if "--workdir" in cmd and cmd.index("--workdir") + 1 < len(cmd):
        workdir = cmd[cmd.index("--workdir") + 1]
    if not workdir.startswith("/run/"):
        raise ImageContentError(f"the image's work directory {workdir} is not under /run")
    cmd += ["--memory-budget", f"{memory_mib}M"]
    return cmd, workdir


def image_environment(
    image: ImageContents, added: Mapping[str, str], *, kms_socket: str | None
) -> list[str]:
    """The image's `env` lines, `NB_KMS_TARGET` pointed at the relay (or dropped), then `added`."""
    lines = [line for line in image.env if not line.startswith("NB_KMS_TARGET=")]
    if kms_socket is not None:
        lines.append(f"NB_KMS_TARGET=unix:{kms_socket}")
    lines += [f"{name}={value}" for name, value in added.items()]
    return lines


def enter_argv(
    root: Path, cmd: list[str], env: list[str], *, workdir: str, memory_mib: int, io: Path, pki: str
) -> list[str]:
    """`unshare ... python -I enter.py SPEC`: the launcher of the image's world."""
    spec = {
        "root": str(root),
        "argv": cmd,
        "env": env,
        "workdir": workdir,
        "memory_mib": memory_mib,
        "binds": [
            {"src": str(io), "dst": IO_AT, "ro": False},
            {"src": pki, "dst": PKI_AT, "ro": True},
        ],
    }
    ns = ["--mount", "--propagation", "private", "--net", "--pid", "--fork", "--kill-child"]
    return ["unshare", *ns, "--", sys.executable, "-I", str(ENTER), json.dumps(spec)]


# -- the host's world (threat-model.md §6) --------------------------------------------


def _make_ram_dir(state_dir: Path, warnings: list[str]) -> Path:
    # A fresh 0700 directory with a random name under the RAM-backed /dev/shm (mkdir fails if
    # anything already sits at that name, so no pre-placed path is trusted).
    base = Path("/dev/shm")  # noqa: S108
    if not (base.is_dir() and os.access(base, os.W_OK)):
        warnings.append("no /dev/shm: the enclave's work directory is on the state disk")
        base = state_dir
    path = base / f"nitro-bundles-enclave-{secrets.token_hex(6)}"
    path.mkdir(mode=0o700)
    return path


def _lay_out(ram_dir: Path, image: ImageContents) -> tuple[Path, Path, Path]:
    code = ram_dir / "code"
    for rel, data in image.server_files.items():
        write_private(code / rel, data)
    config = ram_dir / "etc" / "enclave.json"
    write_private(config, image.config)
    work = ram_dir / "work"
    work.mkdir(mode=0o700)
    return code, config, work


def _can_isolate() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--kill-child", "--", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def _can_mount_private(work: Path) -> bool:
    # A throwaway namespace: the probe's tmpfs on `work` vanishes with it.
    probe = subprocess.run(
        [
            *["unshare", "--mount", "--propagation", "private", "--"],
            *["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "nb-probe", str(work)],
        ],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def _private_mount_argv(work: Path, memory_mib: int, argv: list[str]) -> list[str]:
    """`sh -c` that mounts the private tmpfs on `work` (in the new mount namespace), then execs.

    `huge=within_size`: transparent huge pages for every 2 MiB of a file that lies within its
    size. The runner sizes big files before it writes them, so they get huge pages (which
    halves the cost of writing the decrypted bytes here), while small files do not each take
    a 2 MiB page (`huge=always` makes 100 files of 100 bytes use 200 MiB of the size limit).
    Kernels without huge pages for tmpfs get the same mount without the option.
    """
    opts = f"mode=0700,size={max(1, memory_mib)}m"
    target = shlex.quote(str(work))
    script = (
        f"mount -t tmpfs -o {opts},huge=within_size nb-enclave-work {target} 2>/dev/null"
        f" || mount -t tmpfs -o {opts} nb-enclave-work {target} || exit 97; "
        'exec "$@"'
    )
    return ["/bin/sh", "-c", script, "enclave-sh", *argv]
