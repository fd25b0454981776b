# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The host's RPC client to the enclave server (specs/rpc-protocol.md).

`client` holds `EnclaveClient`, `connection` the connection it runs on, `values` the
values and errors it returns.
"""

from user_runtime.rpc.client import (
    ConnectionLostError,
    EnclaveClient,
    EnclaveUnavailableError,
    PutFile,
    RemoteError,
    parse_address,
)

__all__ = [
    "ConnectionLostError",
    "EnclaveClient",
    "EnclaveUnavailableError",
    "PutFile",
    "RemoteError",
    "parse_address",
]
