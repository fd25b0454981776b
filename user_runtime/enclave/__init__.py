# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime enclave`: start, watch and stop the enclave (specs/qemu-backend.md).

`backend` picks who runs the image: `local` without a VM (`rootfs`, `enter`, `world`,
`files`, `relay`), `qemu` in QEMU (`heartbeat`), `nitro` with nitro-cli; `procs` starts and
ends their processes, `record` keeps what they started, `logs` follows it, `state` says
where it lives. Only `state`'s names are re-exported: `run` imports this package on every
call, so it imports nothing heavy; `_cli_enclave` imports `backend`, `record` and `logs` by
their module paths.
"""

from user_runtime.enclave.state import STATE_FILE, resolve_state_dir, state_dir_path

__all__ = ["STATE_FILE", "resolve_state_dir", "state_dir_path"]
