# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Replay each tests/vectors/rpc/ transcript against the server state machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "package_format" / "rpc"))
from rpc_vectors import read_vector, vector_files

from enclave.runner.interface import UnavailableRunner
from enclave.server import EnclaveServer
from enclave.sessionfs import SessionFs
from package_format.rpc import FrameDecoder, RpcFormatError, errors
from package_format.rpc.frames import encode_frame

NOW = 1_767_225_600_000_000_000
VECTORS = vector_files()


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_vector_replay(path: Path) -> None:
    fields, lines = read_vector(path)
    server = EnclaveServer(SessionFs(clock=lambda: NOW), UnavailableRunner())
    conn = server.connection(lambda message: pytest.fail(f"unexpected async {message}"))
    decoder = FrameDecoder()
    sent: list[bytes] = []
    error: RpcFormatError | None = None
    try:
        for direction, data in lines:
            if direction != ">":
                continue
            for frame in decoder.feed(data):
                for message in conn.on_frame(frame):
                    head, body = encode_frame(message.header(), message.body)
                    sent.append(head + bytes(body))
        decoder.end_of_stream()
    except RpcFormatError as e:
        error = e
    expected = [data for direction, data in lines if direction == "<"]
    assert sent == expected
    if fields["expect"] == "success":
        assert error is None
    else:
        assert type(error) is getattr(errors, fields["expect"])
