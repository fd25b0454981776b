# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The demo's user: pull the release, start the enclave, sync, run, check the receipt."""

from __future__ import annotations

import shutil
from pathlib import Path

from demo_shell import (
    BUCKET,
    ENCLAVE,
    EXAMPLES,
    NONCE,
    RECORDS,
    StepFailed,
    banner,
    sh,
    show_metrics,
)


def user_env(env: dict[str, str]) -> dict[str, str]:
    """The user's host has its own AWS identity (the enclave's parent role).

    The enclave uses it to call KMS, and the key policy admits it only with this image's
    attestation.
    """
    return {
        **env,
        "AWS_ACCESS_KEY_ID": "local-enclave-access-key",
        "AWS_SECRET_ACCESS_KEY": "local-enclave-secret-key",
    }


def pull_and_start(env: dict[str, str], owner_pub: Path, user: Path, state: Path) -> Path:
    """Pull the current release (bundle and image), start the enclave, mount the folder.

    Returns:
        The pulled image.
    """
    banner("user: pull the current version, start the enclave, sync, run")
    downloads = user / "downloads"
    sh(
        *("user-runtime", "pull", "breast-cancer-scorer", "--from", f"s3://{BUCKET}/releases"),
        *("--owner-key", owner_pub, "-d", downloads, "--eif"),
        env=env,
    )
    pulled_eif = next(downloads.glob("*.eif"))
    sh(
        *("user-runtime", "enclave", "start", "--eif", pulled_eif, "--state-dir", state),
        *("--backend", ENCLAVE),
        env=env,
    )
    sh("user-runtime", "enclave", "status", "--state-dir", state, env=env)
    synced = user / "synced_folder"
    sh("user-runtime", "sync", "-d", synced, "--state-dir", state, env=env, cwd=user)
    pulled_bundle = next(downloads.glob("*.nb"))
    shutil.copy(pulled_bundle, synced / "encrypted" / "app_package.encrypted")
    print(f"$ cp {pulled_bundle.name} synced_folder/encrypted/app_package.encrypted")
    for csv in sorted((EXAMPLES / "user" / "dataset").iterdir()):
        shutil.copy(csv, synced / "dataset" / csv.name)
    print("$ cp -r dataset/* synced_folder/dataset/")
    sh("ls", "-l", synced / "dataset", synced / "encrypted", env=env, cwd=user)
    return pulled_eif


def run_and_verify(env: dict[str, str], pulled_eif: Path, user: Path, state: Path) -> None:
    """Run the app on the user's data set, show the results, verify the run's receipt."""
    synced = user / "synced_folder"
    sh(
        *("user-runtime", "run", "-f", "app_package.encrypted", "-s", "ml_algorithm.py"),
        *("-a", "-m model.h5 -d /dataset/ -o /output/", "--nonce", NONCE),
        *("--state-dir", state),
        env=env,
        cwd=user,
    )
    banner("user: the results, in synced_folder/output/")
    sh("ls", "-l", synced / "output", env=env, cwd=user)
    show_metrics(synced / "output" / "metrics.json", "the user's data set")

    banner("user: the run's receipt (specs/receipts.md)")
    sh(
        *("user-runtime", "receipt", "verify", synced / "output" / "receipt.cbor"),
        *("--eif", pulled_eif, "--nonce", NONCE, "--root", state / "nsm-pki" / "root.pem"),
        *("--output-dir", synced / "output", "--inputs", synced),
        env=env,
        cwd=user,
    )


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
    show_metrics(synced / "output" / "metrics.json", "the hospital's records")


def undeclared_entrypoint_refused(env: dict[str, str], user: Path, state: Path) -> None:
    """An entrypoint the owner did not declare must not run."""
    banner("user: an entrypoint the owner did not declare is refused")
    try:
        sh(
            *("user-runtime", "run", "-f", "app_package.encrypted", "-s", "train.py"),
            *("--state-dir", state),
            env=env,
            cwd=user,
        )
    except StepFailed:
        print("(refused, as it should be)")
    else:
        raise StepFailed("an undeclared entrypoint ran")
