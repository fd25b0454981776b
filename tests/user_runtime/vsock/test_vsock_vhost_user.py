# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""vhost-user corners (specs/vsock.md §3): replies, config reads, front-end faults."""

from __future__ import annotations

import shutil
import struct
import threading

import pytest
from vsock_fake import FakeFrontEnd
from vsock_fake_qemu import TIMEOUT
from vsock_harness import Harness, short_dir

from user_runtime.vsock import BackendConfig, FrontEndError, VsockBackend


def test_unknown_request_with_need_reply_is_refused(vsock: Harness) -> None:
    answer = vsock.guest.message(99, need_reply=True)
    assert struct.unpack("<Q", answer) == (1,)
    vsock.assert_serving()


def test_features_not_offered_are_ignored(vsock: Harness) -> None:
    vsock.guest.message(2, struct.pack("<Q", (1 << 32) | (1 << 30) | (1 << 29)))
    vsock.assert_serving()


def test_get_config_pads_past_the_cid(vsock: Harness) -> None:
    answer = vsock.guest.message(24, struct.pack("<III", 4, 8, 0) + bytes(8), reply=True)
    assert answer == struct.pack("<III", 4, 8, 0) + bytes(8)  # cid 16: high half, padding
    answer = vsock.guest.message(24, struct.pack("<III", 0, 12, 0) + bytes(12), reply=True)
    assert answer[12:] == struct.pack("<Q", 16) + bytes(4)


def test_set_config_is_ignored(vsock: Harness) -> None:
    ack = vsock.guest.message(
        25, struct.pack("<III", 0, 8, 0) + struct.pack("<Q", 99), need_reply=True
    )
    assert struct.unpack("<Q", ack) == (0,)
    assert vsock.guest.get_config() == 16


def test_vring_base_is_where_the_guest_left_off(vsock: Harness) -> None:
    guest = vsock.guest
    vsock.assert_serving()
    assert guest.stop_queue(1) == guest.avail_idx[1]
    guest.start_queue(1)
    vsock.assert_serving()


def _session_with(messages) -> BaseException | None:
    directory = short_dir()
    backend = VsockBackend(BackendConfig(str(directory / "v.sock"), str(directory / "vs")))
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            backend.serve()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    guest = FakeFrontEnd(str(directory / "v.sock"))
    try:
        messages(guest)
    finally:
        thread.join(TIMEOUT)
        guest.close()
    alive, cleaned = thread.is_alive(), not (directory / "v.sock").exists()
    shutil.rmtree(directory, ignore_errors=True)
    assert not alive
    assert cleaned  # the back-end removed its socket on the way out
    return errors[0] if errors else None


def test_mem_table_without_its_fds_ends_the_session() -> None:
    def messages(guest: FakeFrontEnd) -> None:
        table = struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, 4096, 0, 0)
        guest.message(5, table)

    assert isinstance(_session_with(messages), FrontEndError)


def test_queue_index_out_of_range_ends_the_session() -> None:
    def messages(guest: FakeFrontEnd) -> None:
        guest.message(8, struct.pack("<II", 7, 256))

    assert isinstance(_session_with(messages), FrontEndError)


@pytest.mark.parametrize("num", [0, 3, 65536])
def test_bad_queue_size_ends_the_session(num: int) -> None:
    def messages(guest: FakeFrontEnd) -> None:
        guest.message(8, struct.pack("<II", 0, num))

    assert isinstance(_session_with(messages), FrontEndError)


def test_ring_outside_the_memory_table_ends_the_session() -> None:
    def messages(guest: FakeFrontEnd) -> None:
        guest.message(16, struct.pack("<Q", (1 << 9) | (1 << 3)))  # REPLY_ACK for the table
        guest.set_mem_table()
        guest.message(8, struct.pack("<II", 0, 256))
        guest.message(9, struct.pack("<IIQQQQ", 0, 0, 0x1000, 0x2000, 0x3000, 0))  # not UVAs
        guest.message(12, struct.pack("<Q", 0), fds=[guest.kick[0]])

    assert isinstance(_session_with(messages), FrontEndError)


def test_hang_up_after_a_request_ends_the_session_cleanly() -> None:
    def messages(guest: FakeFrontEnd) -> None:
        assert guest.u64(17) == 3
        guest.disconnect()

    assert _session_with(messages) is None
