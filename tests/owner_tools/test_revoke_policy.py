# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 7, must show 2: a revoked version is refused by pull AND, once the revocation is
applied to the key policy, by the local KMS front: a copy of the old bundle no longer opens.

The whole local stack runs (moto for S3 and KMS, the KMS front enforcing key policies); the
enclave is a simulated NSM reporting the PCRs of the image that was published.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime

import pytest
from dist_fixtures import owner_key

from enclave.kms_client import (
    KmsAccessDeniedError,
    KmsClientConfig,
    KmsCredentials,
    KmsRecipientClient,
)
from enclave.nsm.simulator import SimulatedNsm, load_sim_pki, pcrs_from_eif
from local_stack import stack
from owner_tools._cli import main as owner_main
from owner_tools.kms.aws import AwsKms
from owner_tools.pack import pack
from package_format.bundle.config import BundleConfig
from package_format.bundle.header import read_header
from package_format.bundle.manifest import Entrypoint
from package_format.eif.layout import SectionType
from package_format.eif.writer import SectionSource, write_eif
from package_format.index import S3Location, VersionRevokedError
from user_runtime.pull import make_client, pull

policy = pytest.importorskip("package_format.key_policy")


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    state = tmp_path_factory.mktemp("h6-stack")
    info, started = stack.up(state)
    assert started
    try:
        yield info
    finally:
        stack.down(state)


def _write_eif(path, app: bytes):
    sections = [
        SectionSource.from_bytes(SectionType.KERNEL, b"tiny kernel"),
        SectionSource.from_bytes(SectionType.CMDLINE, b"console=ttyS0"),
        SectionSource.from_bytes(SectionType.RAMDISK, b"bootstrap ramdisk"),
        SectionSource.from_bytes(SectionType.RAMDISK, app),
    ]
    buf = io.BytesIO()
    m = write_eif(buf, sections).measurements
    path.write_bytes(buf.getvalue())
    pcrs = {
        "Measurements": {
            "HashAlgorithm": "Sha384 { ... }",
            "PCR0": m.pcr0.hex(),
            "PCR1": m.pcr1.hex(),
            "PCR2": m.pcr2.hex(),
        }
    }
    path.with_name(path.name + ".pcrs.json").write_text(json.dumps(pcrs))


def _enclave(info, eif) -> KmsRecipientClient:
    nsm = SimulatedNsm(load_sim_pki(info.root_pem_path.parent), pcrs_from_eif(eif))
    creds = stack.ENCLAVE_CREDENTIALS
    config = KmsClientConfig(
        region=creds["AWS_DEFAULT_REGION"],
        endpoint_url=info.kms.url,
        credentials=KmsCredentials(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"]),
        max_attempts=1,
    )
    return KmsRecipientClient(config, nsm)


def test_revoked_version_refused_by_pull_and_by_local_kms(local, aws_env, tmp_path, capsys):
    import boto3

    s3 = boto3.session.Session().client("s3", endpoint_url=local.moto.url)
    bucket = f"revkms-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    kms = boto3.session.Session().client("kms", endpoint_url=local.kms.url)
    account = stack.LOCAL_ACCOUNT
    key_arn = kms.create_key(Description="h6 revoke test")["KeyMetadata"]["Arn"]

    key = owner_key(tmp_path / "keys")
    eif = tmp_path / "app.eif"
    _write_eif(eif, b"application published by the owner")
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("print('hi')\n")
    bundle = tmp_path / "demo-1.0.0.nbundle"
    pack(
        app,
        bundle,
        config=BundleConfig(
            name="demo", version="1.0.0", entrypoints=(Entrypoint("main", "main.py"),)
        ),
        key_id=key_arn,
        signing_key=key.seed,
        kms=AwsKms(endpoint_url=local.kms.url),
        created=1_760_000_000,
    )

    common = [
        "--to",
        f"s3://{bucket}",
        "--key",
        str(key.private_path),
        "--endpoint-url",
        local.moto.url,
        "--kms-endpoint-url",
        local.kms.url,
    ]
    assert (
        owner_main(
            [
                "publish",
                str(bundle),
                "--eif",
                str(eif),
                "--apply-policy",
                "--account",
                account,
                "--enclave-principal",
                stack.ENCLAVE_PRINCIPAL,
                "--admin-principal",
                stack.OWNER_PRINCIPAL,
                "--owner-principal",
                stack.OWNER_PRINCIPAL,
                *common,
            ]
        )
        == 0
    )
    assert "now admits this image" in capsys.readouterr().err

    with bundle.open("rb") as fh:
        header = read_header(fh).header
    context = dict(header.encryption_context)
    # Before revocation: the published image's enclave unwraps the bundle's data key.
    assert len(_enclave(local, eif).decrypt(header.wrapped_key, context)) == 32

    assert (
        owner_main(
            ["revoke", "demo", "1.0.0", "--reason", "compromised", "--apply-policy", *common]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "now denies Decrypt for demo@1.0.0" in out

    # The user's pull refuses it...
    with pytest.raises(VersionRevokedError):
        pull(
            make_client(local.moto.url),
            S3Location(bucket, ""),
            "demo",
            "1.0.0",
            public_key=key.public,
            dest_dir=tmp_path / "user",
            state_dir=tmp_path / "state",
            now=datetime.now(UTC),
        )
    # ...and a copy of the old bundle kept from before no longer opens, even in the same image.
    with pytest.raises(KmsAccessDeniedError):
        _enclave(local, eif).decrypt(header.wrapped_key, context)
    # Publishing the next version re-applies the image policy; the revocation survives.
    bundle2 = tmp_path / "demo-1.1.0.nbundle"
    pack(
        app,
        bundle2,
        config=BundleConfig(
            name="demo", version="1.1.0", entrypoints=(Entrypoint("main", "main.py"),)
        ),
        key_id=key_arn,
        signing_key=key.seed,
        kms=AwsKms(endpoint_url=local.kms.url),
        created=1_760_000_001,
    )
    assert (
        owner_main(
            [
                "publish",
                str(bundle2),
                "--eif",
                str(eif),
                "--apply-policy",
                "--account",
                account,
                "--enclave-principal",
                stack.ENCLAVE_PRINCIPAL,
                "--admin-principal",
                stack.OWNER_PRINCIPAL,
                *common,
            ]
        )
        == 0
    )
    with bundle2.open("rb") as fh:
        header2 = read_header(fh).header
    assert (
        len(_enclave(local, eif).decrypt(header2.wrapped_key, dict(header2.encryption_context)))
        == 32
    )
    with pytest.raises(KmsAccessDeniedError):
        _enclave(local, eif).decrypt(header.wrapped_key, context)
    stored = kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"]
    deny = [s for s in json.loads(stored)["Statement"] if s["Effect"] == "Deny"]
    assert len(deny) == 1
    assert deny[0]["Condition"]["StringEquals"]["kms:EncryptionContext:version"] == "1.0.0"
