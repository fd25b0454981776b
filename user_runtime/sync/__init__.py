# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime sync`: the FUSE folder that mirrors into the enclave (specs/sync.md).

The parts: `operations` and `namespace` (what the kernel asks) over `core` (open handles,
shared helpers), `fuse` (the mount), `link` (the enclave, reconnect), `session` (what is
asked of a client), `reconcile` (replay of the store), `writes` and `replay` (the queues),
`store` (the host-side copy), `control` (the daemon's socket) and `mounts` (a mount's life).
`_cli_sync` imports them by module; `run` needs only `wait_for_sync`.
"""

from user_runtime.sync.control import wait_for_sync

__all__ = ["wait_for_sync"]
