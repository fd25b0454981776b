# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Guest RAM shared by the front-end: mapped regions and bounds-checked access (§3.3)."""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

from user_runtime.vsock.errors import DescriptorError, FrontEndError


@dataclass(frozen=True, slots=True)
class Region:
    """One region of the memory table, mapped into this process."""

    guest_addr: int
    size: int
    user_addr: int
    view: mmap.mmap
    #: Where the region starts in `view` (the mapping starts at a page boundary).
    start: int


class GuestMemory:
    """The guest's RAM as the front-end described it in VHOST_USER_SET_MEM_TABLE.

    Every access is checked against the regions, so a hostile address from the guest can
    only raise `DescriptorError`, never touch memory outside the mappings.
    """

    def __init__(self, regions: list[Region]) -> None:
        self._regions = regions

    @classmethod
    def empty(cls) -> GuestMemory:
        """A table with no regions (before the first SET_MEM_TABLE)."""
        return cls([])

    @classmethod
    def map_table(cls, table: list[tuple[int, int, int, int]], fds: list[int]) -> GuestMemory:
        """Map each (guest_addr, size, user_addr, mmap_offset) region from its fd.

        The fds are closed here whatever happens; the mappings keep the memory alive.

        Raises:
            FrontEndError: the table and the fds disagree, or a region cannot be mapped.
        """
        try:
            if len(table) != len(fds):
                raise FrontEndError(f"{len(table)} regions but {len(fds)} fds")
            regions = [_map_region(entry, fd) for entry, fd in zip(table, fds, strict=True)]
        finally:
            for fd in fds:
                os.close(fd)
        return cls(regions)

    def close(self) -> None:
        """Unmap every region."""
        for region in self._regions:
            region.view.close()
        self._regions = []

    def locate(self, guest_addr: int, size: int) -> tuple[mmap.mmap, int]:
        """Return (mapping, offset) for `size` bytes at `guest_addr` inside one region.

        Raises:
            DescriptorError: the range is not inside one region.
        """
        for region in self._regions:
            delta = guest_addr - region.guest_addr
            if delta >= 0 and delta + size <= region.size:
                return region.view, region.start + delta
        raise DescriptorError(f"guest range {guest_addr:#x}+{size:#x} is outside guest memory")

    def user_to_guest(self, user_addr: int, size: int) -> int:
        """Translate a front-end (QEMU) virtual address, as SET_VRING_ADDR uses (§3.4).

        Raises:
            FrontEndError: the range is not inside one region.
        """
        for region in self._regions:
            delta = user_addr - region.user_addr
            if delta >= 0 and delta + size <= region.size:
                return region.guest_addr + delta
        raise FrontEndError(f"user range {user_addr:#x}+{size:#x} is outside the memory table")

    def read(self, guest_addr: int, size: int) -> bytes:
        """Copy `size` bytes out of guest memory.

        Raises:
            DescriptorError: the range is not inside one region.
        """
        view, offset = self.locate(guest_addr, size)
        return view[offset : offset + size]

    def write(self, guest_addr: int, data: bytes | memoryview) -> None:
        """Copy `data` into guest memory.

        Raises:
            DescriptorError: the range is not inside one region.
        """
        view, offset = self.locate(guest_addr, len(data))
        view[offset : offset + len(data)] = data


def _map_region(entry: tuple[int, int, int, int], fd: int) -> Region:
    guest_addr, size, user_addr, offset = entry
    if size == 0 or guest_addr + size > 1 << 64 or user_addr + size > 1 << 64:
        raise FrontEndError(f"bad memory region {guest_addr:#x}+{size:#x}")
    # mmap wants a page-aligned offset: map from the page boundary below and skip the rest.
    skip = offset % mmap.ALLOCATIONGRANULARITY
    try:
        view = mmap.mmap(
            fd,
            size + skip,
            flags=mmap.MAP_SHARED,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
            offset=offset - skip,
        )
    except (OSError, ValueError, OverflowError) as error:
        raise FrontEndError(f"cannot map memory region {guest_addr:#x}: {error}") from error
    return Region(guest_addr, size, user_addr, view, skip)
