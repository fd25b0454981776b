# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What runs inside the enclave: RPC server, session filesystem, runner, NSM, KMS client.

The server's one entry is `enclave.app.serve(ServeOptions)` (the `enclave-server serve` CLI,
the image's `cmd` and the local backend all come there); its parts: `server` (the RPC state
machine) over `transport` (sockets), `sessionfs` (the session's files in RAM), `runner` (one
bundle entrypoint, from ciphertext to wiped plaintext), `nsm` (the device and its simulator),
`kms_client` (key release through attestation). Exported here: the one error root, whose
every error carries its RPC code (`enclave.errors`).
"""

from enclave.errors import EnclaveError, ExternalError, InputError, UsageError

__all__ = ["EnclaveError", "ExternalError", "InputError", "UsageError"]
