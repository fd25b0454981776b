# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The enclave KMS client fails closed (issue 4 item 4) against moto and a tiny fake KMS."""

from __future__ import annotations

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave.errors import InputError
from enclave.kms_client import (
    KmsAccessDeniedError,
    KmsClientConfig,
    KmsCredentials,
    KmsRecipientClient,
    KmsRequestError,
    MissingCiphertextForRecipientError,
    PlaintextInResponseError,
    RecipientEnvelopeError,
    RecipientKeyMismatchError,
)
from local_stack.processes import LOCAL_CREDENTIALS
from package_format.cms.build import build_enveloped_data

CONTEXT = {"bundle": "demo"}


class StubNsm:
    """Records the public key of each attestation request; the document is opaque bytes."""

    def __init__(self) -> None:
        self.public_keys: list[bytes] = []

    def attestation(self, public_key=None, user_data=None, nonce=None) -> bytes:
        self.public_keys.append(public_key)
        return b"\x84stub-attestation-document"


def client_for(url: str, nsm) -> KmsRecipientClient:
    config = KmsClientConfig(
        region="us-east-1",
        endpoint_url=url,
        credentials=KmsCredentials(
            LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"], LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        ),
        max_attempts=1,
        timeout_s=10,
    )
    return KmsRecipientClient(config, nsm)


def test_moto_plaintext_answer_to_recipient_request_refused(moto_server):
    # moto ignores Recipient and returns Plaintext: exactly the answer a
    # production KMS must never give; the client refuses it.
    import boto3

    moto = boto3.session.Session().client(
        "kms",
        region_name="us-east-1",
        endpoint_url=moto_server.url,
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )
    key_id = moto.create_key()["KeyMetadata"]["KeyId"]
    blob = moto.encrypt(KeyId=key_id, Plaintext=os.urandom(32), EncryptionContext=CONTEXT)[
        "CiphertextBlob"
    ]
    nsm = StubNsm()
    with pytest.raises(PlaintextInResponseError, match="carries Plaintext"):
        client_for(moto_server.url, nsm).decrypt(blob, CONTEXT)
    assert len(nsm.public_keys) == 1


def test_moto_plaintext_answer_to_generate_random_refused(moto_server):
    with pytest.raises(PlaintextInResponseError):
        client_for(moto_server.url, StubNsm()).generate_random(32)


class FakeKms:
    """A one-route KMS JSON server whose answer a test chooses from the request."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                status, payload = fake.answer(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def envelope_for(spki: bytes, secret: bytes) -> str:
    cms = build_enveloped_data(
        secret, recipient_public_key_der=spki, content_key=os.urandom(32), iv=os.urandom(16)
    )
    return base64.b64encode(cms).decode()


def recipient_spki(request: dict) -> bytes:
    assert request["Recipient"]["KeyEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    assert base64.b64decode(request["Recipient"]["AttestationDocument"]).startswith(b"\x84")
    return nsm_keys[-1]


nsm_keys: list[bytes] = []


class KeyTrackingNsm(StubNsm):
    def attestation(self, public_key=None, user_data=None, nonce=None) -> bytes:
        nsm_keys.append(public_key)
        return super().attestation(public_key, user_data, nonce)


def test_envelope_for_own_key_opens():
    secret = os.urandom(32)
    with FakeKms(
        lambda req: (200, {"CiphertextForRecipient": envelope_for(recipient_spki(req), secret)})
    ) as kms:
        assert client_for(kms.url, KeyTrackingNsm()).decrypt(b"blob", CONTEXT) == secret
        assert kms.requests[0]["EncryptionContext"] == CONTEXT
        assert "KeyId" not in kms.requests[0]


def test_fresh_rsa2048_key_per_request():
    secret = os.urandom(16)
    nsm = KeyTrackingNsm()
    with FakeKms(
        lambda req: (200, {"CiphertextForRecipient": envelope_for(recipient_spki(req), secret)})
    ) as kms:
        client = client_for(kms.url, nsm)
        client.decrypt(b"blob", CONTEXT)
        client.decrypt(b"blob", CONTEXT)
    first, second = nsm.public_keys[-2:]
    assert first != second
    key = serialization.load_der_public_key(first)
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 2048


def test_plaintext_next_to_envelope_refused():
    secret = os.urandom(32)

    def answer(req):
        return 200, {
            "CiphertextForRecipient": envelope_for(recipient_spki(req), secret),
            "Plaintext": base64.b64encode(secret).decode(),
        }

    with FakeKms(answer) as kms, pytest.raises(PlaintextInResponseError):
        client_for(kms.url, KeyTrackingNsm()).decrypt(b"blob", CONTEXT)


def test_missing_ciphertext_for_recipient_refused():
    with (
        FakeKms(lambda req: (200, {"KeyId": "k"})) as kms,
        pytest.raises(MissingCiphertextForRecipientError),
    ):
        client_for(kms.url, StubNsm()).decrypt(b"blob", CONTEXT)


def test_envelope_for_another_key_refused():
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    other_spki = other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with (
        FakeKms(
            lambda req: (200, {"CiphertextForRecipient": envelope_for(other_spki, b"k" * 32)})
        ) as kms,
        pytest.raises(RecipientKeyMismatchError),
    ):
        client_for(kms.url, StubNsm()).decrypt(b"blob", CONTEXT)


def test_garbage_envelope_refused():
    garbage = base64.b64encode(b"\x30\x80garbage").decode()
    with (
        FakeKms(lambda req: (200, {"CiphertextForRecipient": garbage})) as kms,
        pytest.raises(RecipientEnvelopeError),
    ):
        client_for(kms.url, StubNsm()).decrypt(b"blob", CONTEXT)


def test_access_denied_is_typed():
    denied = {"__type": "AccessDeniedException", "message": "not for you"}
    with (
        FakeKms(lambda req: (400, denied)) as kms,
        pytest.raises(KmsAccessDeniedError, match="not for you"),
    ):
        client_for(kms.url, StubNsm()).decrypt(b"blob", CONTEXT)


def test_other_kms_error_is_request_error():
    error = {"__type": "InvalidCiphertextException", "message": "bad blob"}
    with FakeKms(lambda req: (400, error)) as kms, pytest.raises(KmsRequestError) as caught:
        client_for(kms.url, StubNsm()).decrypt(b"blob", CONTEXT)
    assert not isinstance(caught.value, KmsAccessDeniedError)


def test_unreachable_endpoint_is_request_error():
    from local_stack.processes import free_port

    with pytest.raises(KmsRequestError):
        client_for(f"http://127.0.0.1:{free_port()}", StubNsm()).decrypt(b"blob", CONTEXT)


def test_generate_random_wrong_length_refused():
    with (
        FakeKms(
            lambda req: (
                200,
                {"CiphertextForRecipient": envelope_for(recipient_spki(req), b"r" * 8)},
            )
        ) as kms,
        pytest.raises(RecipientEnvelopeError),
    ):
        client_for(kms.url, KeyTrackingNsm()).generate_random(16)


@pytest.mark.parametrize("count", [0, 1025])
def test_generate_random_count_out_of_range(count):
    with pytest.raises(InputError):
        client_for("http://127.0.0.1:9", StubNsm()).generate_random(count)
