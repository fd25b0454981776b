# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Credentials the host hands the enclave at run time (specs/rpc-protocol.md §7.5).

An enclave image never holds AWS credentials (its `env` is measured and public). The local
launcher may pass them in the server's environment; on QEMU and Nitro the host sends them
over the RPC connection with the `credentials` op before a run. The newest ones win; they
live in enclave memory only and are never written to a file or a log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostCredentials:
    """AWS credentials and region for KMS, as the host sent them."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None


class CredentialStore:
    """The latest `HostCredentials` (thread-safe; the RPC server sets, key release reads)."""

    def __init__(self, initial: HostCredentials | None = None) -> None:
        self._lock = threading.Lock()
        self._current = initial

    def set(self, credentials: HostCredentials) -> None:
        """Replace the held credentials."""
        with self._lock:
            self._current = credentials

    def get(self) -> HostCredentials | None:
        """The held credentials, or None when the host sent none."""
        with self._lock:
            return self._current
