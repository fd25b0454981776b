# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime sync`: the FUSE folder that mirrors into the enclave (specs/sync.md).

The parts: `operations` (what the kernel asks), `fuse` (the mount), `link` (the enclave,
reconnect and replay), `writes` and `replay` (the queues), `store` (the host-side copy),
`control` (the daemon's socket) and `mounts` (a mount's life). `_cli_sync` imports them by
module; `run` needs only `wait_for_sync`.
"""

from user_runtime.sync.control import wait_for_sync

__all__ = ["wait_for_sync"]
