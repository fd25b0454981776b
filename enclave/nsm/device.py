# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The real Nitro Secure Module: `/dev/nsm` and its NSM_IOCTL_RAW call (specs/attestation.md §10).

Kernel uapi `linux/nsm.h`: `struct nsm_raw { struct nsm_iovec request, response; }`
with `struct nsm_iovec { __u64 addr, len; }`; `NSM_IOCTL_RAW = _IOWR(0x0A, 0, 32)`.
The request is at most 0x1000 bytes; the response buffer is 0x3000 bytes and
the kernel rewrites `response.len`. The ioctl function is injected, so tests
run the whole call path without a device.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from typing import TYPE_CHECKING, Any, Self

from enclave.nsm import messages
from enclave.nsm.errors import NsmIoctlError, NsmResponseError, NsmUnavailableError
from enclave.nsm.interface import NsmDescription, PcrDescription, check_random_length

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

NSM_DEVICE = "/dev/nsm"
NSM_IOCTL_RAW = 0xC0200A00  # _IOWR(0x0A, 0, sizeof(struct nsm_raw) == 32)
NSM_REQUEST_MAX = 0x1000
NSM_RESPONSE_MAX = 0x3000
_MAX_RANDOM_CALLS = 64


class NsmIovec(ctypes.Structure):
    """`struct nsm_iovec { __u64 addr; __u64 len; }`."""

    _fields_ = (("addr", ctypes.c_uint64), ("len", ctypes.c_uint64))


class NsmRaw(ctypes.Structure):
    """`struct nsm_raw { struct nsm_iovec request; struct nsm_iovec response; }`."""

    _fields_ = (("request", NsmIovec), ("response", NsmIovec))


assert ctypes.sizeof(NsmRaw) == 32


class NsmDevice:
    """An `Nsm` backed by `/dev/nsm`.

    Args:
        path: the device node.
        ioctl: `fcntl.ioctl` or a test double with the same signature.
    """

    def __init__(
        self,
        path: str = NSM_DEVICE,
        *,
        ioctl: Callable[[int, int, Any], Any] = fcntl.ioctl,
    ) -> None:
        self._path = path
        self._ioctl = ioctl
        self._fd: int | None = None

    def open(self) -> None:
        """Open the device (done on first use otherwise).

        Raises:
            NsmUnavailableError: the device cannot be opened.
        """
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CLOEXEC)
            except OSError as exc:
                raise NsmUnavailableError(
                    f"{self._path}: cannot open nsm device ({(exc.strerror or '').lower()})"
                ) from exc

    def close(self) -> None:
        """Close the device if open."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(self, request: bytes) -> bytes:
        """Send one raw request and return the raw response bytes.

        Raises:
            NsmUnavailableError: the device cannot be opened.
            NsmIoctlError: the request is too large or the ioctl fails.
            NsmResponseError: the kernel reports an impossible response length.
        """
        if not 0 < len(request) <= NSM_REQUEST_MAX:
            raise NsmIoctlError(f"nsm: request is {len(request)} bytes, limit {NSM_REQUEST_MAX}")
        self.open()
        assert self._fd is not None
        request_buffer = ctypes.create_string_buffer(request, len(request))
        response_buffer = ctypes.create_string_buffer(NSM_RESPONSE_MAX)
        raw = NsmRaw(
            NsmIovec(ctypes.addressof(request_buffer), len(request)),
            NsmIovec(ctypes.addressof(response_buffer), NSM_RESPONSE_MAX),
        )
        try:
            self._ioctl(self._fd, NSM_IOCTL_RAW, raw)
        except OSError as exc:
            raise NsmIoctlError(
                f"{self._path}: nsm ioctl failed ({(exc.strerror or '').lower()})"
            ) from exc
        length = int(raw.response.len)
        if not 0 < length <= NSM_RESPONSE_MAX:
            raise NsmResponseError(f"nsm: response length {length} out of range")
        return response_buffer.raw[:length]

    def attestation(
        self,
        public_key: bytes | None = None,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
    ) -> bytes:
        """Return a document signed by the NSM (see `Nsm.attestation`).

        Raises:
            NsmArgumentError: a field is longer than 1024 bytes.
            NsmError: the device failed or answered wrongly.
        """
        request = messages.encode_attestation(public_key, user_data, nonce)
        return messages.decode_attestation(self.call(request))

    def describe_pcr(self, index: int) -> PcrDescription:
        """Return PCR `index` (see `Nsm.describe_pcr`).

        Raises:
            NsmArgumentError: `index` is out of range.
            NsmError: the device failed or answered wrongly.
        """
        return messages.decode_describe_pcr(self.call(messages.encode_describe_pcr(index)))

    def get_random(self, length: int) -> bytes:
        """Return `length` random bytes, calling GetRandom as often as needed.

        Raises:
            NsmArgumentError: `length` is out of range.
            NsmError: the device failed or returned no bytes.
        """
        check_random_length(length)
        out = b""
        for _ in range(_MAX_RANDOM_CALLS):
            chunk = messages.decode_get_random(self.call(messages.encode_get_random()))
            if not chunk:
                raise NsmResponseError("nsm: GetRandom returned no bytes")
            out += chunk
            if len(out) >= length:
                return out[:length]
        raise NsmResponseError("nsm: GetRandom did not return enough bytes")

    def describe(self) -> NsmDescription:
        """Return the module description (see `Nsm.describe`).

        Raises:
            NsmError: the device failed or answered wrongly.
        """
        return messages.decode_describe_nsm(self.call(messages.encode_describe_nsm()))
