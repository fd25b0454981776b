# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The simulated NSM PKI in the stack's state directory (the KMS front pins its root).

specs/local-kms.md §7.2. The PKI itself (a P-384 root and intermediate that the
simulated NSM signs short-lived leaves with) belongs to the NSM simulator; the
stack only makes sure one exists and hands the front its root certificate.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from local_stack.errors import ExternalError

__all__ = ["ROOT_CERT_FILE", "ensure_pki"]

ROOT_CERT_FILE = "root.pem"
SIMULATOR_MODULE = "enclave.nsm.simulator"
SIMULATOR_CREATE = "load_or_create_sim_pki"


def ensure_pki(directory: Path) -> Path:
    """Create the simulated NSM PKI in `directory` if missing; return its root PEM path.

    Raises:
        ExternalError: the PKI cannot be created.
    """
    root = directory / ROOT_CERT_FILE
    if root.is_file():
        return root
    # The PKI belongs to the NSM simulator; the stack does not import the enclave
    # package statically (imports run one way), it asks for it by name at run time.
    try:
        simulator = importlib.import_module(SIMULATOR_MODULE)
        create = getattr(simulator, SIMULATOR_CREATE)
    except (ImportError, AttributeError) as exc:
        raise ExternalError(f"the nsm simulator ({SIMULATOR_MODULE}) is not available") from exc
    try:
        create(directory)
    except Exception as exc:  # the simulator's own typed errors, OSError
        raise ExternalError(f"{directory}: cannot create the nsm pki: {exc}") from exc
    if not root.is_file():
        raise ExternalError(f"{directory}: nsm pki has no {ROOT_CERT_FILE}")
    return root
