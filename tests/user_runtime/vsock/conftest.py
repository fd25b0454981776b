# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Fixtures: a real back-end (in a thread) and the fake front-end connected to it."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from vsock_fake import FakeFrontEnd
from vsock_fake_qemu import TIMEOUT
from vsock_harness import Harness, short_dir

from user_runtime.vsock import BackendConfig, DeviceLimits, VsockBackend


@pytest.fixture
def make_harness() -> Iterator[Callable[..., Harness]]:
    made: list[tuple[Harness, threading.Thread, list[BaseException], Path]] = []

    def make(guest_cid: int = 16, limits: DeviceLimits | None = None, **fake: Any) -> Harness:
        directory = short_dir()
        config = BackendConfig(
            str(directory / "vhost.sock"),
            str(directory / "vsock"),
            guest_cid=guest_cid,
            limits=limits or DeviceLimits(),
        )
        backend = VsockBackend(config)
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                backend.serve()
            except BaseException as error:  # reported by the fixture's teardown
                errors.append(error)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        guest = FakeFrontEnd(config.socket_path, guest_cid=guest_cid, **fake)
        guest.handshake()
        harness = Harness(backend, guest, config.uds_path, ThreadPoolExecutor(64))
        made.append((harness, thread, errors, directory))
        return harness

    yield make
    for harness, thread, errors, directory in made:
        harness.backend.stop()
        thread.join(TIMEOUT)
        harness.pool.shutdown(wait=False, cancel_futures=True)
        harness.guest.close()
        shutil.rmtree(directory, ignore_errors=True)
        assert not thread.is_alive(), "the back-end did not stop"
        assert not errors, errors
        assert not harness.guest.credit_violations, harness.guest.credit_violations


@pytest.fixture
def vsock(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
