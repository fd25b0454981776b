# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The demo's owner and hospital: keys, the enclave image, the bundles, policies, publishing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from demo_shell import (
    BUCKET,
    BUILD_TIME,
    ENCLAVE,
    EXAMPLES,
    PRINCIPALS,
    RECORDS,
    REPO,
    StepFailed,
    aws_client,
    banner,
    sh,
)


def create_kms_key_and_bucket(env: dict[str, str]) -> str:
    """What an owner does once in their AWS account (console or CLI): a key and a bucket."""
    kms = aws_client("kms", env)
    key_id = kms.create_key(Description="breast-cancer-scorer bundles")["KeyMetadata"]["KeyId"]
    aws_client("s3", env).create_bucket(Bucket=BUCKET)
    print(f"(set-up) KMS key {key_id}, S3 bucket {BUCKET}", flush=True)
    return str(key_id)


def image_inputs() -> list[str | Path]:
    """build-eif's blobs (and rootfs) for the chosen backend."""
    requirements = EXAMPLES / "ml_app" / "requirements.txt"
    if ENCLAVE != "qemu":
        blobs: list[str | Path] = ["--blobs", EXAMPLES / "dev-blobs" / "x86_64"]
        if os.geteuid() == 0 and shutil.which("mmdebstrap"):
            # The app's declared environment in the image's rootfs (built once, cached): the
            # local enclave runs in that rootfs, not on this host's Python.
            return [*blobs, "--app-requirements", requirements]
        print(
            "(set-up) not root or no mmdebstrap: the image has no rootfs, so the local "
            "enclave runs on this host's Python",
            flush=True,
        )
        return blobs
    built = subprocess.run(
        [sys.executable, str(REPO / "toolchain" / "build.py"), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        raise StepFailed(f"the enclave toolchain is not built: {built.stderr.strip()}")
    tools = json.loads(built.stdout.strip().splitlines()[-1])
    print(f"(set-up) enclave toolchain: blobs {tools['blobs']['dir']}", flush=True)
    # The image's rootfs: the server's venv plus the app's environment, built from the app's
    # own hashed requirements (cached under the toolchain cache; no host venv in the image).
    return ["--blobs", tools["blobs"]["dir"], "--app-requirements", requirements]


def owner_app(owner: Path, hospital_pub: Path) -> Path:
    """The sample app, its manifest accepting the hospital's data set (bundle-format.md §5.7)."""
    from package_format.bundle import load_public_key

    app = owner / "ml_app"
    shutil.copytree(EXAMPLES / "ml_app", app)
    signer = load_public_key(hospital_pub.read_text()).hex()
    with (app / "bundle.toml").open("a", encoding="utf-8") as f:
        f.write(
            "\n[[data]]                     # the hospital's records, read-only at /data/NAME\n"
            f'name = "{RECORDS}"\nsigners = ["{signer}"]\nversions = ">=1.0.0, <2.0.0"\n'
            "required = false\n"
        )
    print(f"$ cat >> ml_app/bundle.toml   # [[data]] {RECORDS}, signed by the hospital's key")
    return app


def owner_release(
    env: dict[str, str], owner: Path, key_id: str, hospital_pub: Path
) -> tuple[Path, Path]:
    """The owner's signing key, image and bundle, a policy bound to PCR0, then publish.

    Returns:
        The image and the bundle.
    """
    banner("owner: a signing key, the enclave image, the bundle")
    sh("owner-tools", "keygen", "-o", owner / "owner", env=env)
    app_dir = owner_app(owner, hospital_pub)
    eif = owner / "scorer.eif"
    sh(
        *("owner-tools", "build-eif", *image_inputs(), "--owner-key", owner / "owner.pub"),
        *("--name", "scorer-enclave", "--version", "1.0.0", "--build-time", BUILD_TIME),
        *("-o", eif),
        env=env,
    )
    bundle = owner / "breast-cancer-scorer-1.0.0.nb"
    sh(
        *("owner-tools", "pack", app_dir, "-o", bundle, "--key-id", key_id),
        *("--signing-key", owner / "owner.key"),
        env=env,
    )
    sh("owner-tools", "inspect", bundle, env=env)
    sh("owner-tools", "verify", bundle, "--owner-key", owner / "owner.pub", "--decrypt", env=env)

    banner("owner: key policy bound to the image's PCR0, then publish to S3")
    policy = owner / "key-policy.json"
    sh(
        *("owner-tools", "policy", "--eif", eif, "--bundle-name", "breast-cancer-scorer"),
        *PRINCIPALS,
        *("-o", policy),
        env=env,
    )
    sh("owner-tools", "policy", "check", policy, env=env)
    sh(
        *("owner-tools", "publish", bundle, "--eif", eif, "--to", f"s3://{BUCKET}/releases"),
        *("--key", owner / "owner.key", "--apply-policy", *PRINCIPALS),
        env=env,
    )
    return eif, bundle


def hospital_pack(env: dict[str, str], hospital: Path, eif: Path, owner_pub: Path) -> Path:
    """The third party: its own KMS key and policy (PCR0, data only), its data bundle."""
    from package_format.bundle import load_public_key

    banner("hospital: its own KMS key, a policy bound to the image, its records as a data bundle")
    kms = aws_client("kms", env)
    key_id = str(kms.create_key(Description="hospital records")["KeyMetadata"]["KeyId"])
    print(f"(set-up) the hospital's KMS key {key_id}", flush=True)
    policy = hospital / "key-policy.json"
    sh(
        *("owner-tools", "policy", "--eif", eif, "--bundle-name", RECORDS, "--data"),
        *("--bind", "pcr0", *PRINCIPALS, "-o", policy),
        env=env,
    )
    sh("owner-tools", "policy", "check", policy, env=env)
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy.read_text())
    print("$ aws kms put-key-policy --key-id ... --policy file://key-policy.json", flush=True)
    folder = hospital / "records"
    folder.mkdir()
    shutil.copy(EXAMPLES / "user" / "dataset" / "patients.csv", folder / "patients.csv")
    owner = load_public_key(owner_pub.read_text()).hex()
    (folder / "bundle.toml").write_text(
        f'name = "{RECORDS}"\nversion = "1.0.0"\n\n[[apps]]\nname = "breast-cancer-scorer"\n'
        f'signers = ["{owner}"]\nversions = ">=1.0.0, <2.0.0"\n\n[terms]\nstderr = false\n'
        'max_output_bytes = 1048576\noutput_paths = ["predictions.csv", "metrics.json"]\n'
    )
    out = hospital / f"{RECORDS}-1.0.0.nb"
    sh(
        *("owner-tools", "pack", "--data", folder, "-o", out, "--key-id", key_id),
        *("--signing-key", hospital / "hospital.key"),
        env=env,
    )
    sh("owner-tools", "inspect", out, env=env)
    return out
