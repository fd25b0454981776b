# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The /dev/nsm call path, driven through an injected ioctl (no Nitro host needed)."""

from __future__ import annotations

import ctypes
import errno

import cbor2
import pytest

from enclave.nsm import messages
from enclave.nsm.device import NSM_IOCTL_RAW, NSM_RESPONSE_MAX, NsmDevice, NsmRaw
from enclave.nsm.errors import (
    NsmArgumentError,
    NsmIoctlError,
    NsmResponseError,
    NsmUnavailableError,
)
from enclave.nsm.interface import Nsm


class FakeNsm:
    """Answers like the kernel driver: reads the request, writes the response, sets its len."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[object] = []
        self.calls = 0

    def __call__(self, fd, request_code, raw):
        assert isinstance(fd, int)
        assert request_code == NSM_IOCTL_RAW == 3223325184
        assert isinstance(raw, NsmRaw)
        assert raw.response.len == NSM_RESPONSE_MAX
        request = cbor2.loads(ctypes.string_at(raw.request.addr, raw.request.len))
        self.requests.append(request)
        self.calls += 1
        response = self.answer(request)
        ctypes.memmove(raw.response.addr, response, len(response))
        raw.response.len = len(response)
        return 0


@pytest.fixture
def device_path(tmp_path):
    path = tmp_path / "nsm"
    path.write_bytes(b"")
    return str(path)


def test_struct_layout():
    assert ctypes.sizeof(NsmRaw) == 32
    assert NsmRaw.response.offset == 16


def test_request_encodings():
    assert cbor2.loads(messages.encode_describe_nsm()) == "DescribeNSM"
    assert cbor2.loads(messages.encode_get_random()) == "GetRandom"
    assert cbor2.loads(messages.encode_describe_pcr(8)) == {"DescribePCR": {"index": 8}}
    assert cbor2.loads(messages.encode_attestation(b"pk", None, b"n")) == {
        "Attestation": {"user_data": None, "nonce": b"n", "public_key": b"pk"}
    }


def test_attestation_through_ioctl(device_path):
    fake = FakeNsm(lambda req: cbor2.dumps({"Attestation": {"document": b"\x84doc"}}))
    with NsmDevice(device_path, ioctl=fake) as nsm:
        assert isinstance(nsm, Nsm)
        assert nsm.attestation(public_key=b"spki", user_data=b"u", nonce=b"n") == b"\x84doc"
    assert fake.requests == [
        {"Attestation": {"user_data": b"u", "nonce": b"n", "public_key": b"spki"}}
    ]


def test_describe_pcr_through_ioctl(device_path):
    fake = FakeNsm(lambda req: cbor2.dumps({"DescribePCR": {"lock": True, "data": bytes(48)}}))
    pcr = NsmDevice(device_path, ioctl=fake).describe_pcr(3)
    assert pcr.locked
    assert pcr.data == bytes(48)
    assert fake.requests == [{"DescribePCR": {"index": 3}}]


def test_get_random_loops_until_enough(device_path):
    fake = FakeNsm(lambda req: cbor2.dumps({"GetRandom": {"random": b"\x11" * 100}}))
    assert NsmDevice(device_path, ioctl=fake).get_random(256) == b"\x11" * 256
    assert fake.calls == 3


def test_describe_through_ioctl(device_path):
    answer = {
        "DescribeNSM": {
            "version_major": 1,
            "version_minor": 0,
            "version_patch": 0,
            "module_id": "i-0123-enc0123",
            "max_pcrs": 32,
            "locked_pcrs": [2, 0, 1],
            "digest": "SHA384",
        }
    }
    description = NsmDevice(device_path, ioctl=FakeNsm(lambda req: cbor2.dumps(answer))).describe()
    assert description.module_id == "i-0123-enc0123"
    assert description.locked_pcrs == (0, 1, 2)
    assert description.version == (1, 0, 0)


def test_nsm_error_response_is_typed(device_path):
    fake = FakeNsm(lambda req: cbor2.dumps({"Error": "InvalidIndex"}))
    with pytest.raises(NsmResponseError, match="InvalidIndex"):
        NsmDevice(device_path, ioctl=fake).describe_pcr(31)


@pytest.mark.parametrize(
    "answer",
    [
        b"\xff",
        cbor2.dumps({"GetRandom": {"random": b"x"}}),
        cbor2.dumps({"Attestation": {"document": "text"}}),
        cbor2.dumps("Attestation"),
        cbor2.dumps({"Attestation": {"document": b"x"}}) + b"\x00",
    ],
    ids=["not-cbor", "wrong-variant", "wrong-type", "bare-text", "trailing"],
)
def test_malformed_response_is_typed(device_path, answer):
    with pytest.raises(NsmResponseError):
        NsmDevice(device_path, ioctl=FakeNsm(lambda req: answer)).attestation()


def test_ioctl_failure_is_typed(device_path):
    def failing(fd, code, raw):
        raise OSError(errno.EPERM, "Operation not permitted")

    with pytest.raises(NsmIoctlError):
        NsmDevice(device_path, ioctl=failing).get_random(8)


def test_missing_device_is_typed(tmp_path):
    with pytest.raises(NsmUnavailableError):
        NsmDevice(str(tmp_path / "absent")).describe()


def test_oversized_field_refused_before_ioctl(device_path):
    fake = FakeNsm(lambda req: b"")
    with pytest.raises(NsmArgumentError):
        NsmDevice(device_path, ioctl=fake).attestation(nonce=bytes(1025))
    assert fake.calls == 0
