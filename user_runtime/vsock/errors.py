# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Errors of the vsock back-end, grouped by who is at fault (specs/vsock.md §9)."""

from __future__ import annotations

from user_runtime.errors import ExternalError, InputError, UserRuntimeError


class VsockError(UserRuntimeError):
    """Base of every error the vsock back-end raises on purpose."""


class GuestFaultError(VsockError):
    """The guest broke the virtio or vsock rules: the back-end drops a buffer or a connection."""


class HeaderError(GuestFaultError):
    """A packet header is short, names an unknown op or type, or is inconsistent."""


class DescriptorError(GuestFaultError):
    """A descriptor chain loops, is too long, has the wrong direction or leaves guest memory."""

    def __init__(self, message: str, head: int | None = None) -> None:
        super().__init__(message)
        #: The chain's head index, when it is a valid one and can be returned to the guest.
        self.head = head


class FrontEndError(VsockError, ExternalError):
    """The vhost-user front-end (QEMU) broke the vhost-user protocol: the session ends."""


class BackendConfigError(VsockError, InputError):
    """The back-end cannot start with the given settings (bad value, socket path in use)."""
