# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""vsock: the server binds any CID; the client names CID:PORT (no loopback to test end to end)."""

from __future__ import annotations

import socket

import pytest

from enclave.errors import ExternalError
from enclave.transport import VMADDR_CID_ANY, listen_vsock
from user_runtime.rpc.client import EnclaveClient, EnclaveUnavailableError, parse_address

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_VSOCK"), reason="no AF_VSOCK")


def test_listen_vsock_binds_any_cid() -> None:
    try:
        sock = listen_vsock(50_123)
    except ExternalError as e:  # the kernel may lack vsock altogether
        pytest.skip(f"vsock unavailable: {e}")
    try:
        assert sock.family == socket.AF_VSOCK
        assert sock.getsockname() == (VMADDR_CID_ANY, 50_123)
    finally:
        sock.close()


def test_vsock_address_parses_to_cid_and_port() -> None:
    assert parse_address("vsock:16:5005") == (socket.AF_VSOCK, (16, 5005))


def test_unreachable_vsock_cid_is_enclave_unavailable() -> None:
    with pytest.raises(EnclaveUnavailableError) as info:
        EnclaveClient.connect("vsock:3:5005", timeout=2)
    assert str(info.value).startswith("vsock:3:5005: cannot reach the enclave: ")
