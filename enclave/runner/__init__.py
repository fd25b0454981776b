# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The runner: one bundle entrypoint, from ciphertext to wiped plaintext (threat-model.md §5).

`runner` holds `Runner`; its parts: `api` (its plug points and `RunnerConfig`), `bundle` and
`extract` (opening and decrypting a bundle), `args` and `view` (the run's arguments and
world), `zygote` (the pre-started interpreter), `data_checks` and `data_bundles` (data
bundles in a run: checked before any KMS call, then opened and bounded), `record` (the run's
receipt), `errors` (its refusals, each carrying its RPC code) and `interface` (what the RPC
server sees of a runner). Private to the package: `_prestart`, `_process` and `_workspace`
(parts of `Runner`). Re-exported: what `enclave.app` and owner_tools' `try` use. `open_bundle`
(`bundle`) is not: the server imports it only once it serves with keys.
"""

from enclave.runner.api import (
    BundleFacts,
    BundleOpener,
    KeyRelease,
    RunRequest,
    RunResult,
    RunSink,
    SessionFiles,
)
from enclave.runner.errors import KeyReleaseError, NoRunnerError, RunError
from enclave.runner.interface import SupportsRun, UnavailableRunner
from enclave.runner.record import ReceiptIssuer, issuer_from_nsm
from enclave.runner.runner import Runner, RunnerConfig

__all__ = [
    "BundleFacts",
    "BundleOpener",
    "KeyRelease",
    "KeyReleaseError",
    "NoRunnerError",
    "ReceiptIssuer",
    "RunError",
    "RunRequest",
    "RunResult",
    "RunSink",
    "Runner",
    "RunnerConfig",
    "SessionFiles",
    "SupportsRun",
    "UnavailableRunner",
    "issuer_from_nsm",
]
