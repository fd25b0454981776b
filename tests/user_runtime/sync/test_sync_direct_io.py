# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Write-only descriptors bypass the kernel's page cache (specs/sync.md §8): what it must not break."""

from __future__ import annotations

import mmap
import os

import pytest

pytestmark = pytest.mark.fuse


def test_reader_sees_appends_from_a_write_only_descriptor(sync_mount):
    # A reader (tail -f) caches the file's last, partly filled page; an append through
    # a direct-I/O descriptor must not leave it reading that page's stale zeros.
    path = sync_mount.folder / "dataset" / "log.txt"
    path.write_bytes(b"a" * 100)
    reader = os.open(path, os.O_RDONLY)
    writer = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        assert os.pread(reader, 4096, 0) == b"a" * 100
        os.write(writer, b"b" * 50)
        assert os.pread(reader, 4096, 100) == b"b" * 50
        assert os.pread(reader, 4096, 0) == b"a" * 100 + b"b" * 50
    finally:
        os.close(writer)
        os.close(reader)


def test_overwrite_through_write_only_descriptor_is_seen_by_open_reader(sync_mount):
    path = sync_mount.folder / "dataset" / "data.bin"
    path.write_bytes(b"x" * 8192)
    reader = os.open(path, os.O_RDONLY)
    writer = os.open(path, os.O_WRONLY)
    try:
        assert os.pread(reader, 8192, 0) == b"x" * 8192
        os.pwrite(writer, b"y" * 100, 1000)
        assert os.pread(reader, 8192, 0) == b"x" * 1000 + b"y" * 100 + b"x" * 7092
    finally:
        os.close(writer)
        os.close(reader)


def test_shared_mmap_of_a_read_write_descriptor_still_works(sync_mount):
    path = sync_mount.folder / "dataset" / "mapped.bin"
    path.write_bytes(b"\0" * 8192)
    fd = os.open(path, os.O_RDWR)
    try:
        with mmap.mmap(fd, 8192) as view:
            view[10:15] = b"hello"
            view.flush()
    finally:
        os.close(fd)
    assert path.read_bytes()[10:15] == b"hello"
    with sync_mount.enclave.client() as c:
        assert c.read("dataset/mapped.bin", 10, 5) == b"hello"
