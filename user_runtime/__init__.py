# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The user's side: enclave start/stop, sync (FUSE), run, pull, attestation verify.

The parts are imported by module (`user_runtime.run`, `user_runtime.pull`, ...) and by
subpackage (`enclave`, `rpc`, `sync`, `vsock`), each declaring its own names; this package
exports only its error base and the groups under it (who is at fault). Modules named `_cli*`
and `_entry` are the command line, not an API.
"""

from user_runtime.errors import ExternalError, InputError, UsageError, UserRuntimeError

__all__ = ["ExternalError", "InputError", "UsageError", "UserRuntimeError"]
