# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Fixtures for the local stack: the running stack, simulated enclaves of images A and B.

Images A and B are tiny EIFs written by `package_format.eif` (they differ only in
the application ramdisk, so PCR0 and PCR2 differ); enclaves are `SimulatedNsm`s
signing with the PKI `local-stack up` created in its state directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _stack_support import (  # noqa: F401
    IMAGE_A,
    IMAGE_B,
    PCR0_A,
    PCR0_B,
    RecordingNsm,
    enclave_policy,
    kms_client,
    tiny_eif_measurements,
)

from enclave.nsm.simulator import SimPki, SimulatedNsm, load_sim_pki, pcrs_from_measurements
from local_stack import stack


@pytest.fixture(scope="session")
def local_stack_info(tmp_path_factory) -> Iterator[stack.StackInfo]:
    """The whole local stack (moto + KMS front processes, NSM PKI), up for the session."""
    state = tmp_path_factory.mktemp("nb-state")
    info, started = stack.up(state)
    assert started
    try:
        yield info
    finally:
        stack.down(state)


@pytest.fixture(scope="session")
def sim_pki(local_stack_info) -> SimPki:
    return load_sim_pki(local_stack_info.root_pem_path.parent)


@pytest.fixture
def enclave_nsm(sim_pki):
    """Make a recording simulated NSM: image "A", "B", or debug mode of A."""

    def make(image: str = "A", **kwargs) -> RecordingNsm:
        measurements = IMAGE_A if image in ("A", "debug") else IMAGE_B
        nsm = SimulatedNsm(
            sim_pki, pcrs_from_measurements(measurements), debug=image == "debug", **kwargs
        )
        return RecordingNsm(nsm)

    return make


@pytest.fixture
def root_pem_path(local_stack_info) -> Path:
    return local_stack_info.root_pem_path
