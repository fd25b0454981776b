# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""AwsKms against moto's server over HTTP: the calls and the error translation."""

from __future__ import annotations

import pytest
from _bundle_support import create_kms_key

from owner_tools.errors import ExternalError, InputError
from owner_tools.kms.aws import AwsKms
from owner_tools.kms.interface import (
    KmsAccessDeniedError,
    KmsConfigError,
    KmsCredentialsError,
    KmsInvalidCiphertextError,
    KmsKeyNotFoundError,
    KmsUnreachableError,
)

CONTEXT = {"bundle": "demo", "version": "1.0.0"}


def test_generate_and_decrypt_round_trip(moto_server, aws_env) -> None:
    key_id = create_kms_key(moto_server.url)
    kms = AwsKms(moto_server.url, "us-east-1")
    plaintext, blob = kms.generate_data_key(key_id, CONTEXT)
    assert len(plaintext) == 32
    assert blob != plaintext
    assert kms.decrypt(blob, key_id, CONTEXT) == plaintext


def test_wrong_context_is_invalid_ciphertext(moto_server, aws_env) -> None:
    key_id = create_kms_key(moto_server.url)
    kms = AwsKms(moto_server.url, "us-east-1")
    _, blob = kms.generate_data_key(key_id, CONTEXT)
    with pytest.raises(KmsInvalidCiphertextError) as info:
        kms.decrypt(blob, key_id, {**CONTEXT, "version": "2.0.0"})
    assert isinstance(info.value, InputError)


def test_unknown_key_is_key_not_found(moto_server, aws_env) -> None:
    kms = AwsKms(moto_server.url, "us-east-1")
    with pytest.raises(KmsKeyNotFoundError) as info:
        kms.generate_data_key("11111111-2222-3333-4444-555555555555", CONTEXT)
    assert "not found" in str(info.value)


@pytest.mark.parametrize(
    "code", ["AccessDeniedException", "DisabledException", "KMSInvalidStateException"]
)
def test_refusal_codes_map_to_access_denied(aws_env, code: str) -> None:
    # moto does not enforce key policies or key state; check the mapping on botocore's error.
    import botocore.exceptions

    error = botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "no"}}, "Decrypt")
    translated = AwsKms("http://127.0.0.1:1", "us-east-1")._translate(error, "k")
    assert type(translated) is KmsAccessDeniedError
    assert code in str(translated)


def test_unreachable_endpoint(aws_env) -> None:
    from local_stack.processes import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(KmsUnreachableError) as info:
        AwsKms(url, "us-east-1").generate_data_key("k", CONTEXT)
    assert isinstance(info.value, ExternalError)
    assert url in str(info.value)


def test_no_credentials(moto_server, aws_env, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(KmsCredentialsError):
        AwsKms(moto_server.url, "us-east-1").generate_data_key("k", CONTEXT)


def test_no_region(aws_env, monkeypatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(KmsConfigError):
        AwsKms(None, None)
