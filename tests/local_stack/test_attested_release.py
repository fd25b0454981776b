# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 4 item 3: real boto3 over HTTP against the local stack, key policy bound to image A.

The owner makes the data key with GenerateDataKey (owner principal, no attestation);
enclaves call Decrypt through `enclave.kms_client` with the enclave host's credentials.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from _stack_support import IMAGE_A, PCR0_A, enclave_policy, kms_client
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from enclave.kms_client import (
    KmsAccessDeniedError,
    KmsClientConfig,
    KmsCredentials,
    KmsRecipientClient,
    RecipientKeyMismatchError,
)
from enclave.nsm.simulator import SimulatedNsm, create_sim_pki, pcrs_from_measurements
from local_stack import stack

CONTEXT = {"bundle": "demo-model", "version": "1.0.0"}


def spki(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def bound_key(local_stack_info):
    """A key whose policy binds Decrypt to PCR0 of image A and CONTEXT; a data key under it."""
    owner = kms_client(local_stack_info.kms.url)
    key_id = owner.create_key(Policy=enclave_policy(PCR0_A, CONTEXT))["KeyMetadata"]["KeyId"]
    owner.create_alias(AliasName=f"alias/bound-{key_id[:8]}", TargetKeyId=key_id)
    made = owner.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=CONTEXT)
    assert "Plaintext" in made  # the owner's own call: no Recipient, allowed by OwnerPacks
    return {
        "key_id": key_id,
        "alias": f"alias/bound-{key_id[:8]}",
        "blob": made["CiphertextBlob"],
        "data_key": made["Plaintext"],
    }


def enclave(info, nsm) -> KmsRecipientClient:
    creds = stack.ENCLAVE_CREDENTIALS
    config = KmsClientConfig(
        region=creds["AWS_DEFAULT_REGION"],
        endpoint_url=info.kms.url,
        credentials=KmsCredentials(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"]),
        max_attempts=1,
    )
    return KmsRecipientClient(config, nsm)


def test_image_a_enclave_unwraps_data_key(local_stack_info, enclave_nsm, bound_key):
    client = enclave(local_stack_info, enclave_nsm("A"))
    assert client.decrypt(bound_key["blob"], CONTEXT) == bound_key["data_key"]


def test_image_a_enclave_unwraps_with_alias_key_id(local_stack_info, enclave_nsm, bound_key):
    client = enclave(local_stack_info, enclave_nsm("A"))
    assert (
        client.decrypt(bound_key["blob"], CONTEXT, key_id=bound_key["alias"])
        == (bound_key["data_key"])
    )


def test_image_b_enclave_access_denied(local_stack_info, enclave_nsm, bound_key):
    client = enclave(local_stack_info, enclave_nsm("B"))
    with pytest.raises(KmsAccessDeniedError, match="no statement of the key policy allows"):
        client.decrypt(bound_key["blob"], CONTEXT)


def test_debug_mode_enclave_access_denied(local_stack_info, enclave_nsm, bound_key):
    nsm = enclave_nsm("debug")
    assert nsm.inner.pcrs[0] == bytes(48)
    client = enclave(local_stack_info, nsm)
    with pytest.raises(KmsAccessDeniedError):
        client.decrypt(bound_key["blob"], CONTEXT)


def test_request_without_recipient_access_denied(local_stack_info, bound_key):
    host = kms_client(local_stack_info.kms.url, stack.ENCLAVE_CREDENTIALS)
    with pytest.raises(ClientError) as caught:
        host.decrypt(CiphertextBlob=bound_key["blob"], EncryptionContext=CONTEXT)
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_owner_decrypt_without_recipient_access_denied(local_stack_info, bound_key):
    owner = kms_client(local_stack_info.kms.url)
    with pytest.raises(ClientError) as caught:
        owner.decrypt(CiphertextBlob=bound_key["blob"], EncryptionContext=CONTEXT)
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"


def test_wrong_encryption_context_access_denied(local_stack_info, enclave_nsm, bound_key):
    client = enclave(local_stack_info, enclave_nsm("A"))
    wrong = {**CONTEXT, "version": "0.9.0"}
    with pytest.raises(KmsAccessDeniedError):
        client.decrypt(bound_key["blob"], wrong)


def test_replayed_document_for_other_key_access_denied(local_stack_info, enclave_nsm, bound_key):
    # An attacker captured the document image A's enclave used (its public key is
    # the enclave's, not the attacker's) and replays it: the front accepts each
    # document once, so the replay is denied.
    nsm = enclave_nsm("A")
    enclave(local_stack_info, nsm).decrypt(bound_key["blob"], CONTEXT)
    host = kms_client(local_stack_info.kms.url, stack.ENCLAVE_CREDENTIALS)
    with pytest.raises(ClientError) as caught:
        host.decrypt(
            CiphertextBlob=bound_key["blob"],
            EncryptionContext=CONTEXT,
            Recipient={
                "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                "AttestationDocument": nsm.documents[-1],
            },
        )
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "already used" in caught.value.response["Error"]["Message"]


def test_unused_document_for_other_key_is_unusable(local_stack_info, enclave_nsm, bound_key):
    # A document intercepted before its first use still names its own public key:
    # KMS wraps to that key, and the requesting client refuses an envelope that is
    # not for the key it generated.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nsm = enclave_nsm("A")
    nsm.override_public_key = spki(other)
    with pytest.raises(RecipientKeyMismatchError):
        enclave(local_stack_info, nsm).decrypt(bound_key["blob"], CONTEXT)


def test_stale_document_access_denied(local_stack_info, enclave_nsm, bound_key):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    past = datetime.now(UTC) - timedelta(minutes=6)
    old = enclave_nsm("A", clock=lambda: past).attestation(public_key=spki(key))
    host = kms_client(local_stack_info.kms.url, stack.ENCLAVE_CREDENTIALS)
    with pytest.raises(ClientError) as caught:
        host.decrypt(
            CiphertextBlob=bound_key["blob"],
            EncryptionContext=CONTEXT,
            Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": old},
        )
    assert "too old" in caught.value.response["Error"]["Message"]


def test_document_from_other_root_access_denied(local_stack_info, bound_key, tmp_path):
    rogue = SimulatedNsm(create_sim_pki(tmp_path / "rogue"), pcrs_from_measurements(IMAGE_A))
    client = enclave(local_stack_info, rogue)
    with pytest.raises(KmsAccessDeniedError, match="attestation document rejected"):
        client.decrypt(bound_key["blob"], CONTEXT)


@pytest.mark.parametrize("kind", ["rsa1024", "ec384"])
def test_public_key_not_rsa2048_access_denied(local_stack_info, enclave_nsm, bound_key, kind):
    if kind == "rsa1024":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    else:
        key = ec.generate_private_key(ec.SECP384R1())
    doc = enclave_nsm("A").attestation(public_key=spki(key))
    host = kms_client(local_stack_info.kms.url, stack.ENCLAVE_CREDENTIALS)
    with pytest.raises(ClientError) as caught:
        host.decrypt(
            CiphertextBlob=bound_key["blob"],
            EncryptionContext=CONTEXT,
            Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": doc},
        )
    assert "RSA-2048" in caught.value.response["Error"]["Message"]


def test_wrong_key_encryption_algorithm_access_denied(local_stack_info, enclave_nsm, bound_key):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    doc = enclave_nsm("A").attestation(public_key=spki(key))
    host = kms_client(local_stack_info.kms.url, stack.ENCLAVE_CREDENTIALS)
    with pytest.raises(ClientError) as caught:
        host.decrypt(
            CiphertextBlob=bound_key["blob"],
            EncryptionContext=CONTEXT,
            Recipient={"KeyEncryptionAlgorithm": "RSAES_PKCS1_V1_5", "AttestationDocument": doc},
        )
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"


def test_generate_data_key_with_recipient_has_no_plaintext(local_stack_info, enclave_nsm):
    from package_format.cms.envelope import open_envelope

    owner = kms_client(local_stack_info.kms.url)
    policy = json.loads(enclave_policy(PCR0_A, {}))
    policy["Statement"][2]["Action"] = ["kms:Decrypt", "kms:GenerateDataKey"]
    key_id = owner.create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    doc = enclave_nsm("A").attestation(public_key=spki(key))
    host = kms_client(local_stack_info.kms.url, stack.ENCLAVE_CREDENTIALS)
    answer = host.generate_data_key(
        KeyId=key_id,
        NumberOfBytes=32,
        Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": doc},
    )
    assert "Plaintext" not in answer
    data_key = open_envelope(answer["CiphertextForRecipient"], key)
    assert len(data_key) == 32
    # The stored CiphertextBlob decrypts (owner-side check via moto directly) to the same key.
    import boto3

    from local_stack.processes import LOCAL_CREDENTIALS

    moto = boto3.session.Session().client(
        "kms",
        region_name="us-east-1",
        endpoint_url=local_stack_info.moto.url,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    assert moto.decrypt(CiphertextBlob=answer["CiphertextBlob"])["Plaintext"] == data_key


def test_generate_random_with_recipient(local_stack_info, enclave_nsm):
    client = enclave(local_stack_info, enclave_nsm("A"))
    first, second = client.generate_random(48), client.generate_random(48)
    assert len(first) == 48
    assert first != second


def test_recipient_on_generate_data_key_pair_refused(local_stack_info, enclave_nsm, bound_key):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    doc = enclave_nsm("A").attestation(public_key=spki(key))
    host = kms_client(local_stack_info.kms.url, stack.ENCLAVE_CREDENTIALS)
    with pytest.raises(ClientError) as caught:
        host.generate_data_key_pair(
            KeyId=bound_key["key_id"],
            KeyPairSpec="RSA_2048",
            Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": doc},
        )
    assert caught.value.response["Error"]["Code"] == "UnsupportedOperationException"


def test_reencrypt_from_bound_key_access_denied(local_stack_info, bound_key):
    # ReEncrypt would launder the data key to a key without conditions: the front
    # authorizes kms:ReEncryptFrom on the source key like AWS does.
    owner = kms_client(local_stack_info.kms.url)
    open_key = owner.create_key()["KeyMetadata"]["KeyId"]
    host = kms_client(local_stack_info.kms.url, stack.ENCLAVE_CREDENTIALS)
    with pytest.raises(ClientError) as caught:
        host.re_encrypt(
            CiphertextBlob=bound_key["blob"],
            SourceEncryptionContext=CONTEXT,
            DestinationKeyId=open_key,
        )
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "kms:ReEncryptFrom" in caught.value.response["Error"]["Message"]


def test_other_operations_pass_through(local_stack_info, bound_key):
    owner = kms_client(local_stack_info.kms.url)
    described = owner.describe_key(KeyId=bound_key["alias"])
    assert described["KeyMetadata"]["KeyId"] == bound_key["key_id"]
    keys = {k["KeyId"] for k in owner.list_keys()["Keys"]}
    assert bound_key["key_id"] in keys
    policy = owner.get_key_policy(KeyId=bound_key["key_id"], PolicyName="default")["Policy"]
    assert json.loads(policy)["Statement"][2]["Sid"] == "EnclaveDecrypts"


def test_malformed_json_body_gets_serialization_error(local_stack_info):
    request = urllib.request.Request(
        local_stack_info.kms.url + "/",
        data=b"{not json",
        headers={
            "X-Amz-Target": "TrentService.Decrypt",
            "Content-Type": "application/x-amz-json-1.1",
        },
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["__type"] == "SerializationException"


def test_bad_base64_document_gets_validation_error(local_stack_info, bound_key):
    body = json.dumps(
        {
            "CiphertextBlob": base64.b64encode(bound_key["blob"]).decode(),
            "Recipient": {
                "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                "AttestationDocument": "!!",
            },
        }
    ).encode()
    request = urllib.request.Request(
        local_stack_info.kms.url + "/",
        data=body,
        headers={
            "X-Amz-Target": "TrentService.Decrypt",
            "Content-Type": "application/x-amz-json-1.1",
        },
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert json.loads(caught.value.read())["__type"] == "ValidationException"
