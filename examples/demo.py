# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`make demo`: the whole owner-to-user flow on the local stack, command by command.

Every step is a real command a person would type (printed with a `$`), against the local
stack: moto's server for S3 and KMS over HTTP, the KMS front that enforces attestation and
PCR policy, the simulated NSM and the enclave as a separate process. Work files go to
./demo-work (or $NB_DEMO_WORK; removed at the start of each run); everything started is
stopped at the end, also when a step fails. The owner's and the hospital's steps are in
demo_owner.py, the user's in demo_user.py, the shared shell in demo_shell.py.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from demo_owner import create_kms_key_and_bucket, hospital_pack, owner_release
from demo_shell import WORK, StepFailed, banner, sh, stack_env
from demo_user import (
    pull_and_start,
    run_and_verify,
    third_party_run,
    undeclared_entrypoint_refused,
    user_env,
)


def flow(env: dict[str, str], state: Path) -> None:
    """The owner, the hospital and the user, in the README's order."""
    owner, user = WORK / "owner", WORK / "user"
    sh("local-stack", "status", "--state-dir", state, env=env)
    key_id = create_kms_key_and_bucket(env)

    banner("hospital (a third party): its own signing key")
    hospital = WORK / "hospital"
    hospital.mkdir()
    sh("owner-tools", "keygen", "-o", hospital / "hospital", env=env)

    eif, _ = owner_release(env, owner, key_id, hospital / "hospital.pub")
    records = hospital_pack(env, hospital, eif, owner / "owner.pub")

    env = user_env(env)
    pulled_eif = pull_and_start(env, owner / "owner.pub", user, state)
    run_and_verify(env, pulled_eif, user, state)
    third_party_run(env, user / "synced_folder", records, state, user)
    undeclared_entrypoint_refused(env, user, state)


def clean_up(env: dict[str, str], state: Path) -> None:
    """Stop the mount, the enclave and the local stack (each even if another fails)."""
    banner("clean up")
    synced = WORK / "user" / "synced_folder"
    for argv in (
        ["user-runtime", "sync", "--stop", "-d", str(synced), "--state-dir", str(state)],
        ["user-runtime", "enclave", "stop", "--state-dir", str(state)],
        ["local-stack", "down", "--state-dir", str(state)],
    ):
        try:
            sh(*argv, env=env)
        except StepFailed as exc:
            print(f"(clean-up: {exc})")


def main() -> int:
    if WORK.exists():
        shutil.rmtree(WORK)
    (WORK / "owner").mkdir(parents=True)
    (WORK / "user").mkdir(parents=True)
    state = WORK / "state"
    started = time.monotonic()
    env: dict[str, str] = {}
    try:
        banner("local stack: moto (S3, KMS) + the KMS front + simulated NSM root")
        env = stack_env(state)
        flow(env, state)
    except StepFailed as exc:
        print(f"demo: failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if env:
            clean_up(env, state)
        else:
            banner("clean up")
    print(f"\ndemo: done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
