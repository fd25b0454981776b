# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A vhost-user vsock back-end for QEMU's nitro-enclave machine (specs/vsock.md).

Standard library only. Run it as `python -m user_runtime.vsock` or embed `VsockBackend`.
"""

from __future__ import annotations

from user_runtime.vsock.backend import BackendConfig, VsockBackend
from user_runtime.vsock.device_rx import DeviceLimits
from user_runtime.vsock.errors import (
    BackendConfigError,
    DescriptorError,
    FrontEndError,
    GuestFaultError,
    HeaderError,
    VsockError,
)
from user_runtime.vsock.packet import Op, PacketHeader, parse_header

SPECIFICATION_VERSION = "1"

__all__ = [
    "SPECIFICATION_VERSION",
    "BackendConfig",
    "BackendConfigError",
    "DescriptorError",
    "DeviceLimits",
    "FrontEndError",
    "GuestFaultError",
    "HeaderError",
    "Op",
    "PacketHeader",
    "VsockBackend",
    "VsockError",
    "parse_header",
]
