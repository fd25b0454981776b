# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The host's RPC client to the enclave server (specs/rpc-protocol.md).

`client` holds `EnclaveClient`, `_pipeline` its requests that do not wait for their
replies, `connection` the connection it runs on (`_pending`: what waits on it), `values`
the values and errors it returns.
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
