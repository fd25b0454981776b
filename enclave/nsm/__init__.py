# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The Nitro Secure Module: the `/dev/nsm` device and a simulator behind one interface.

`interface` (the `Nsm` protocol and the checks both sides share), `device` (ioctl on
/dev/nsm), `messages` (the NSM's CBOR messages), `simulator` (a local NSM with its own PKI,
`sim_pki`) and `errors`. Exported here: the interface and the errors; the implementations are
imported where they are chosen (`enclave.app.make_nsm`), so neither loads the other's
dependencies.
"""

from enclave.nsm.errors import (
    NsmArgumentError,
    NsmError,
    NsmIoctlError,
    NsmResponseError,
    NsmUnavailableError,
    SimPkiError,
)
from enclave.nsm.interface import Nsm, NsmDescription, PcrDescription

__all__ = [
    "Nsm",
    "NsmArgumentError",
    "NsmDescription",
    "NsmError",
    "NsmIoctlError",
    "NsmResponseError",
    "NsmUnavailableError",
    "PcrDescription",
    "SimPkiError",
]
