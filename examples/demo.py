# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`make demo`: the whole owner-to-user flow on the local stack, command by command.

Every step is a real command a person would type (printed with a `$`), against the local
stack: moto's server for S3 and KMS over HTTP, the KMS front that enforces attestation and
PCR policy, the simulated NSM and the enclave as a separate process. Work files go to
./demo-work (or $NB_DEMO_WORK; removed at the start of each run); everything started is
stopped at the end, also when a step fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def create_kms_key_and_bucket(env: dict[str, str]) -> str:
    """What an owner does once in their AWS account (console or CLI): a key and a bucket."""
    import boto3

    kms = boto3.client(
        "kms",
        endpoint_url=env["AWS_ENDPOINT_URL_KMS"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    key_id = kms.create_key(Description="breast-cancer-scorer bundles")["KeyMetadata"]["KeyId"]
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=BUCKET)
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


def hospital_pack(env: dict[str, str], hospital: Path, eif: Path, owner_pub: Path) -> Path:
    """The third party: its own KMS key and policy (PCR0, data only), its data bundle."""
    import boto3

    from package_format.bundle import load_public_key

    banner("hospital: its own KMS key, a policy bound to the image, its records as a data bundle")
    kms = boto3.client(
        "kms",
        endpoint_url=env["AWS_ENDPOINT_URL_KMS"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    key_id = str(kms.create_key(Description="hospital records")["KeyMetadata"]["KeyId"])
    print(f"(set-up) the hospital's KMS key {key_id}", flush=True)
    policy = hospital / "key-policy.json"
    sh(
        *("owner-tools", "policy", "--eif", eif, "--bundle-name", RECORDS, "--data"),
        *("--bind", "pcr0", "--account", ACCOUNT, "--enclave-principal", ENCLAVE_ARN),
        *("--admin-principal", OWNER_ARN, "--owner-principal", OWNER_ARN, "-o", policy),
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


def third_party_run(
    env: dict[str, str], synced: Path, records: Path, state: Path, user: Path
) -> None:
    """The user runs the owner's app on the hospital's records, seeing neither."""
    banner("user: the owner's app scores the hospital's encrypted records (three parties)")
    shutil.copy(records, synced / "encrypted" / records.name)
    print(f"$ cp {records.name} synced_folder/encrypted/")
    sh(
        *("user-runtime", "run", "-f", "app_package.encrypted", "--data", records.name),
        *("-s", "ml_algorithm.py", "-a", f"-m model.h5 -d /data/{RECORDS}/ -o /output/"),
        *("--state-dir", state),
        env=env,
        cwd=user,
    )
    metrics = json.loads((synced / "output" / "metrics.json").read_text())
    print(json.dumps(metrics, indent=2))
    if metrics.get("rows") != 169:
        raise StepFailed("metrics.json does not cover the 169 rows of the hospital's records")


def main() -> int:
    if WORK.exists():
        shutil.rmtree(WORK)
    owner, user = WORK / "owner", WORK / "user"
    owner.mkdir(parents=True)
    user.mkdir(parents=True)
    state = WORK / "state"
    started = time.monotonic()
    env: dict[str, str] = {}
    synced = user / "synced_folder"
    try:
        banner("local stack: moto (S3, KMS) + the KMS front + simulated NSM root")
        env = stack_env(state)
        sh("local-stack", "status", "--state-dir", state, env=env)
        key_id = create_kms_key_and_bucket(env)

        banner("hospital (a third party): its own signing key")
        hospital = WORK / "hospital"
        hospital.mkdir()
        sh("owner-tools", "keygen", "-o", hospital / "hospital", env=env)

        banner("owner: a signing key, the enclave image, the bundle")
        sh("owner-tools", "keygen", "-o", owner / "owner", env=env)
        app_dir = owner_app(owner, hospital / "hospital.pub")
        eif = owner / "scorer.eif"
        sh(
            "owner-tools",
            "build-eif",
            *image_inputs(),
            "--owner-key",
            owner / "owner.pub",
            "--name",
            "scorer-enclave",
            "--version",
            "1.0.0",
            "--build-time",
            BUILD_TIME,
            "-o",
            eif,
            env=env,
        )
        bundle = owner / "breast-cancer-scorer-1.0.0.nb"
        sh(
            "owner-tools",
            "pack",
            app_dir,
            "-o",
            bundle,
            "--key-id",
            key_id,
            "--signing-key",
            owner / "owner.key",
            env=env,
        )
        sh("owner-tools", "inspect", bundle, env=env)
        sh(
            "owner-tools",
            "verify",
            bundle,
            "--owner-key",
            owner / "owner.pub",
            "--decrypt",
            env=env,
        )

        banner("owner: key policy bound to the image's PCR0, then publish to S3")
        policy = owner / "key-policy.json"
        sh(
            "owner-tools",
            "policy",
            "--eif",
            eif,
            "--bundle-name",
            "breast-cancer-scorer",
            "--account",
            ACCOUNT,
            "--enclave-principal",
            ENCLAVE_ARN,
            "--admin-principal",
            OWNER_ARN,
            "--owner-principal",
            OWNER_ARN,
            "-o",
            policy,
            env=env,
        )
        sh("owner-tools", "policy", "check", policy, env=env)
        sh(
            "owner-tools",
            "publish",
            bundle,
            "--eif",
            eif,
            "--to",
            f"s3://{BUCKET}/releases",
            "--key",
            owner / "owner.key",
            "--apply-policy",
            "--account",
            ACCOUNT,
            "--enclave-principal",
            ENCLAVE_ARN,
            "--admin-principal",
            OWNER_ARN,
            "--owner-principal",
            OWNER_ARN,
            env=env,
        )

        records = hospital_pack(env, hospital, eif, owner / "owner.pub")

        banner("user: pull the current version, start the enclave, sync, run")
        # The user's host has its own AWS identity (the enclave's parent role); the enclave
        # uses it to call KMS, and the key policy admits it only with this image's attestation.
        env = {
            **env,
            "AWS_ACCESS_KEY_ID": "local-enclave-access-key",
            "AWS_SECRET_ACCESS_KEY": "local-enclave-secret-key",
        }
        downloads = user / "downloads"
        sh(
            "user-runtime",
            "pull",
            "breast-cancer-scorer",
            "--from",
            f"s3://{BUCKET}/releases",
            "--owner-key",
            owner / "owner.pub",
            "-d",
            downloads,
            "--eif",
            env=env,
        )
        pulled_eif = next(downloads.glob("*.eif"))
        sh(
            *("user-runtime", "enclave", "start", "--eif", pulled_eif, "--state-dir", state),
            *("--backend", ENCLAVE),
            env=env,
        )
        sh("user-runtime", "enclave", "status", "--state-dir", state, env=env)
        sh("user-runtime", "sync", "-d", synced, "--state-dir", state, env=env, cwd=user)
        pulled_bundle = next(downloads.glob("*.nb"))
        shutil.copy(pulled_bundle, synced / "encrypted" / "app_package.encrypted")
        print(f"$ cp {pulled_bundle.name} synced_folder/encrypted/app_package.encrypted")
        for csv in sorted((EXAMPLES / "user" / "dataset").iterdir()):
            shutil.copy(csv, synced / "dataset" / csv.name)
        print("$ cp -r dataset/* synced_folder/dataset/")
        sh("ls", "-l", synced / "dataset", synced / "encrypted", env=env, cwd=user)
        sh(
            "user-runtime",
            "run",
            "-f",
            "app_package.encrypted",
            "-s",
            "ml_algorithm.py",
            "-a",
            "-m model.h5 -d /dataset/ -o /output/",
            "--nonce",
            NONCE,
            "--state-dir",
            state,
            env=env,
            cwd=user,
        )
        banner("user: the results, in synced_folder/output/")
        sh("ls", "-l", synced / "output", env=env, cwd=user)
        metrics = json.loads((synced / "output" / "metrics.json").read_text())
        print(json.dumps(metrics, indent=2))
        if metrics.get("rows") != 169:
            raise StepFailed("metrics.json does not cover the 169 rows of the user's data set")

        banner("user: the run's receipt (specs/receipts.md)")
        sh(
            *("user-runtime", "receipt", "verify", synced / "output" / "receipt.cbor"),
            *("--eif", pulled_eif, "--nonce", NONCE, "--root", state / "nsm-pki" / "root.pem"),
            *("--output-dir", synced / "output", "--inputs", synced),
            env=env,
            cwd=user,
        )
        third_party_run(env, synced, records, state, user)

        banner("user: an entrypoint the owner did not declare is refused")
        try:
            sh(
                "user-runtime",
                "run",
                "-f",
                "app_package.encrypted",
                "-s",
                "train.py",
                "--state-dir",
                state,
                env=env,
                cwd=user,
            )
        except StepFailed:
            print("(refused, as it should be)")
        else:
            raise StepFailed("an undeclared entrypoint ran")
    except StepFailed as exc:
        print(f"demo: failed: {exc}", file=sys.stderr)
        return 1
    finally:
        banner("clean up")
        if env:
            for argv in (
                ["user-runtime", "sync", "--stop", "-d", str(synced), "--state-dir", str(state)],
                ["user-runtime", "enclave", "stop", "--state-dir", str(state)],
                ["local-stack", "down", "--state-dir", str(state)],
            ):
                try:
                    sh(*argv, env=env)
                except StepFailed as exc:
                    print(f"(clean-up: {exc})")
    print(f"\ndemo: done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
