# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The back-end's event loop: one thread, one selector, every fd (specs/vsock.md §2)."""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import stat
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from user_runtime.vsock.device import VsockDevice
from user_runtime.vsock.device_rx import HOST_CID, TX, DeviceLimits
from user_runtime.vsock.errors import BackendConfigError, FrontEndError
from user_runtime.vsock.host_ports import Connection
from user_runtime.vsock.vhost_user import VhostUserSession
from user_runtime.vsock.virtqueue import Virtqueue

log = logging.getLogger("user_runtime.vsock")
FRONTEND_TIMEOUT = 30.0  # seconds the front-end may take inside one message
_MAX_CID = 0xFFFFFFFE  # §4.4: 0-2 are reserved, 0xFFFFFFFF is VMADDR_CID_ANY


@dataclass(frozen=True)
class BackendConfig:
    """Where to listen and who the guest is (§2)."""

    socket_path: str  # vhost-user socket the front-end (QEMU) connects to
    uds_path: str  # host clients connect here; guest connections go to f"{uds_path}_{port}"
    guest_cid: int = 16
    host_cid: int = HOST_CID  # src_cid of host-initiated connections (§6.3)
    limits: DeviceLimits = field(default_factory=DeviceLimits)


class VsockBackend:
    """A vhost-user-vsock back-end; `serve()` runs it until the front-end hangs up.

    Both sockets are listening when the constructor returns, and each path appears only
    once it is listening (bound under a temporary name, then renamed), so a caller can
    start QEMU as soon as the path exists. `stop()` may be called from any thread or a
    signal handler.
    """

    def __init__(self, config: BackendConfig) -> None:
        for name, cid in (("guest", config.guest_cid), ("host", config.host_cid)):
            if not 3 <= cid <= _MAX_CID:
                raise BackendConfigError(f"{name} CID {cid} is reserved or over 32 bits")
        self.config = config
        self._selector = selectors.DefaultSelector()
        self._frontend_listener = _listen(config.socket_path)
        try:
            self._host_listener = _listen(config.uds_path)
        except BackendConfigError:
            self._frontend_listener.close()
            Path(config.socket_path).unlink()
            raise
        self._stop_r, self._stop_w = os.pipe()
        os.set_blocking(self._stop_r, False)
        os.set_blocking(self._stop_w, False)
        self.device = VsockDevice(
            config.guest_cid, config.uds_path, config.limits, self._selector, config.host_cid
        )
        self.session: VhostUserSession | None = None
        self._kicks: dict[int, Virtqueue] = {}
        self._deadline: float | None = None  # the next connection deadline

    def stop(self) -> None:
        """Ask `serve()` to return; safe from other threads and signal handlers."""
        with contextlib.suppress(OSError):  # already asked, or already closed
            os.write(self._stop_w, b"x")

    def serve(self) -> None:
        """Serve until the front-end disconnects or `stop()` is called, then clean up.

        Raises:
            FrontEndError: the front-end broke the vhost-user protocol.
        """
        self._selector.register(self._frontend_listener, selectors.EVENT_READ, "listen")
        self._selector.register(self._host_listener, selectors.EVENT_READ, "host")
        self._selector.register(self._stop_r, selectors.EVENT_READ, "stop")
        log.info("listening on %s (front-end) and %s (host)", *self._paths())
        try:
            while self._step():
                self.device.fill_rx()
        finally:
            self.close()

    def _step(self) -> bool:
        deadline = self._deadline
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        for key, mask in self._selector.select(timeout):
            data = key.data
            if isinstance(data, Connection):
                if key.fileobj is data.sock and data.mask:  # not dropped earlier in this batch
                    self.device.on_socket(data, mask)
            elif isinstance(data, Virtqueue):
                self._kick(data)
            elif data == "frontend":
                if not self._frontend_message():
                    return False
            elif data == "host":
                self.device.accept_host(self._host_listener)
            elif data == "listen":
                self._accept_frontend()
            elif data == "stop":
                log.info("stop requested")
                return False
        # Expired connections queue their RST now: serve() fills the rx queue next.
        self._deadline = self.device.expire(time.monotonic())
        return True

    def _accept_frontend(self) -> None:
        try:
            sock, _ = self._frontend_listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self._selector.unregister(self._frontend_listener)  # one front-end per back-end
        sock.settimeout(FRONTEND_TIMEOUT)
        config = struct.pack("<Q", self.config.guest_cid)  # virtio_vsock_config (§3.3)
        self.session = VhostUserSession(sock, config, self)
        self.device.session = self.session
        self._selector.register(sock, selectors.EVENT_READ, "frontend")
        log.info("front-end connected")

    def _frontend_message(self) -> bool:
        assert self.session is not None
        try:
            alive = self.session.handle_one()
        except OSError as error:
            raise FrontEndError(f"front-end socket: {error}") from error
        if alive:
            return True
        if not self.session.messages:
            # §2.2: a peer that hangs up without a request (a probe such as our own
            # stale-socket check) is not the front-end: wait for the real one.
            self._selector.unregister(self.session.sock)
            self.session.sock.close()
            self.session = self.device.session = None
            self._selector.register(self._frontend_listener, selectors.EVENT_READ, "listen")
            return True
        log.info("front-end disconnected")
        return False

    def _kick(self, queue: Virtqueue) -> None:
        if queue.kick_fd is None:
            return
        try:
            os.eventfd_read(queue.kick_fd)
        except BlockingIOError:
            return
        queue.broken = False  # §9.1: a ring found broken is looked at again at each kick
        if queue.index == TX:
            self.device.process_tx()
        # rx: new buffers, filled after this batch; event queue: never used (§4.5)

    def queue_ready(self, queue: Virtqueue) -> None:
        """Session callback: watch the queue's kick fd, then serve the queue."""
        fd = queue.kick_fd
        if fd is not None and fd not in self._kicks:
            os.set_blocking(fd, False)
            self._selector.register(fd, selectors.EVENT_READ, queue)
            self._kicks[fd] = queue
        self.device.queue_ready(queue)

    def queue_stopping(self, queue: Virtqueue) -> None:
        """Session callback: stop watching the kick fd before the session closes it."""
        fd = queue.kick_fd
        if fd is not None and self._kicks.pop(fd, None) is not None:
            self._selector.unregister(fd)
        self.device.queue_stopping(queue)

    def close(self) -> None:
        """Close every connection and fd and remove both socket paths."""
        self.device.drop_all()
        if self.session is not None:
            self.session.close()
            self.session.sock.close()
            self.session = None
        for fd in list(self._kicks):
            self._selector.unregister(fd)
        self._kicks.clear()
        for sock in (self._frontend_listener, self._host_listener):
            sock.close()
        for path in self._paths():
            Path(path).unlink(missing_ok=True)
        self._selector.close()
        stop_r, stop_w = self._stop_r, self._stop_w
        self._stop_r = self._stop_w = -1  # a late stop() must not write to a reused fd
        for fd in (stop_r, stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _paths(self) -> tuple[str, str]:
        return self.config.socket_path, self.config.uds_path


def _listen(path: str) -> socket.socket:
    """Listen on `path`; the path appears only once the socket listens."""
    _remove_stale(path)
    temporary = f"{path}.{os.getpid()}.tmp"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(temporary)
        sock.listen(128)
        sock.setblocking(False)
        Path(temporary).rename(path)
    except OSError as error:
        sock.close()
        raise BackendConfigError(f"cannot listen on {path}: {error}") from error
    return sock


def _remove_stale(path: str) -> None:
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BackendConfigError(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            Path(path).unlink()  # nobody listens: a leftover of an earlier run
            return
    raise BackendConfigError(f"{path} is in use by another process")
