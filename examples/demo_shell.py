# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The demo's shell: where it works, its fixed names, and running a command as a person would.

Shared by demo.py (the flow), demo_owner.py (the owner and the hospital) and demo_user.py
(the user). Every command is printed with a `$` before it runs; a non-zero exit stops the demo.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
WORK = Path(os.environ.get("NB_DEMO_WORK", REPO / "demo-work")).resolve()
BIN = Path(sys.executable).parent
ACCOUNT = "123456789012"
OWNER_ARN = f"arn:aws:iam::{ACCOUNT}:role/local-owner"
ENCLAVE_ARN = f"arn:aws:iam::{ACCOUNT}:role/local-enclave-parent"
BUCKET = "bundles"
BUILD_TIME = "2026-11-01T00:00:00+00:00"
RECORDS = "patient-records"  # the hospital's data bundle (issue 22)
# `make demo ENCLAVE=qemu`: the image boots in QEMU's nitro-enclave machine (its own kernel,
# init and rootfs from the enclave toolchain) instead of running as a local process.
ENCLAVE = os.environ.get("ENCLAVE", "local")
NONCE = secrets.token_hex(16)  # binds the run's receipt to this demo run (receipts.md §6)
# The policy's principals, as `owner-tools policy` and `publish --apply-policy` take them.
PRINCIPALS = (
    *("--account", ACCOUNT, "--enclave-principal", ENCLAVE_ARN),
    *("--admin-principal", OWNER_ARN, "--owner-principal", OWNER_ARN),
)


class StepFailed(Exception):
    """A demo command exited non-zero."""


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def sh(*argv: str | Path, env: dict[str, str], cwd: Path = WORK, capture: bool = False) -> str:
    """Run one command as a user would, echoing it first."""
    words = [str(a) for a in argv]
    shown = " ".join(
        shlex.quote(w.replace(str(WORK) + "/", "").replace(str(REPO) + "/", "")) for w in words
    )
    print(f"$ {shown}", flush=True)
    exe = BIN / words[0]
    if exe.exists():
        words[0] = str(exe)
    proc = subprocess.run(words, env=env, cwd=cwd, text=True, capture_output=capture, check=False)
    if capture:
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise StepFailed(f"{words[0]} exited {proc.returncode}")
    return proc.stdout if capture else ""


def stack_env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("AWS_"):
            del env[name]
    out = subprocess.run(
        [str(BIN / "local-stack"), "up", "--state-dir", str(state), "--env"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def aws_client(service: str, env: dict[str, str]) -> Any:
    """A boto3 client for the local stack's `service` (what the AWS CLI would reach)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=env[f"AWS_ENDPOINT_URL_{service.upper()}"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def show_metrics(path: Path, whose: str) -> None:
    """Print a run's metrics.json; it must cover the 169 rows of the data set."""
    metrics = json.loads(path.read_text())
    print(json.dumps(metrics, indent=2))
    if metrics.get("rows") != 169:
        raise StepFailed(f"metrics.json does not cover the 169 rows of {whose}")
