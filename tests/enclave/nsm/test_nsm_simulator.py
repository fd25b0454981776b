# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The simulated NSM: its PKI, its documents, and the same verifier as for AWS's."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from enclave.nsm.errors import NsmArgumentError, SimPkiError
from enclave.nsm.interface import Nsm
from enclave.nsm.simulator import (
    LEAF_LIFETIME,
    SimulatedNsm,
    create_sim_pki,
    image_pcrs,
    load_or_create_sim_pki,
    load_sim_pki,
    pcrs_from_measurements,
)
from package_format.attestation.document import parse_document
from package_format.attestation.errors import CertificateTimeError, UntrustedRootError
from package_format.attestation.verify import verify_attestation

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
PCR0, PCR1, PCR2, PCR8 = (bytes([i]) * 48 for i in (0xA0, 0xA1, 0xA2, 0xA8))


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("nsm") / "pki"
    create_sim_pki(directory, now=T0 - timedelta(days=1))
    return directory


@pytest.fixture(scope="module")
def pki(pki_dir):
    return load_sim_pki(pki_dir)


def _nsm(pki, *, debug=False, at=T0):
    return SimulatedNsm(pki, image_pcrs(PCR0, PCR1, PCR2, pcr8=PCR8), debug=debug, clock=lambda: at)


def test_pki_files_and_modes(pki_dir):
    assert stat.S_IMODE(pki_dir.stat().st_mode) == 0o700
    for name in ("root.key", "intermediate.key"):
        assert stat.S_IMODE((pki_dir / name).stat().st_mode) == 0o600
    root = x509.load_pem_x509_certificate((pki_dir / "root.pem").read_bytes())
    assert root.public_key().curve.name == "secp384r1"


def test_create_refuses_to_overwrite(pki_dir):
    with pytest.raises(SimPkiError):
        create_sim_pki(pki_dir)


def test_load_or_create_reuses(pki_dir, pki):
    assert load_or_create_sim_pki(pki_dir).root_pem == pki.root_pem


def test_load_rejects_mismatched_key(pki_dir, tmp_path):
    other = tmp_path / "other"
    create_sim_pki(other)
    (other / "root.key").write_bytes((pki_dir / "root.key").read_bytes())
    with pytest.raises(SimPkiError):
        load_sim_pki(other)


def test_load_missing_dir_is_typed(tmp_path):
    with pytest.raises(SimPkiError):
        load_sim_pki(tmp_path / "absent")


def test_simulated_document_verifies_with_sim_root(pki):
    nsm = _nsm(pki)
    assert isinstance(nsm, Nsm)
    data = nsm.attestation(public_key=b"spki", user_data=b"ud", nonce=b"n" * 20)
    doc = verify_attestation(data, root=pki.root_pem, at=T0)
    assert doc.timestamp_ms == int(T0.timestamp() * 1000)
    assert doc.module_id == nsm.module_id
    assert doc.module_id.startswith("i-")
    assert "-enc" in doc.module_id
    assert (doc.public_key, doc.user_data, doc.nonce) == (b"spki", b"ud", b"n" * 20)
    assert sorted(doc.pcrs) == list(range(16))
    assert (doc.pcrs[0], doc.pcrs[1], doc.pcrs[2], doc.pcrs[8]) == (PCR0, PCR1, PCR2, PCR8)
    assert doc.pcrs[3] == doc.pcrs[4] == bytes(48)


def test_simulated_absent_fields_are_null(pki):
    doc = verify_attestation(_nsm(pki).attestation(), root=pki.root_pem, at=T0)
    assert (doc.public_key, doc.user_data, doc.nonce) == (None, None, None)


def test_simulated_leaf_shape_like_aws(pki):
    _, doc = parse_document(_nsm(pki).attestation())
    leaf = x509.load_der_x509_certificate(doc.certificate)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == LEAF_LIFETIME
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert bc.critical
    assert not bc.value.ca
    assert not ku.critical
    assert ku.value.digital_signature
    assert len(doc.cabundle) == 2


def test_fresh_leaf_per_document(pki):
    nsm = _nsm(pki)
    first = parse_document(nsm.attestation())[1].certificate
    second = parse_document(nsm.attestation())[1].certificate
    assert first != second


def test_simulated_leaf_expires_after_three_hours(pki):
    data = _nsm(pki).attestation()
    with pytest.raises(CertificateTimeError):
        verify_attestation(data, root=pki.root_pem, at=T0 + timedelta(hours=3, seconds=1))


def test_simulated_document_rejected_under_aws_root(pki, aws_vector):
    data = _nsm(pki).attestation()
    aws_root = aws_vector("attestation/aws_nitro_root_g1.pem").read_bytes()
    with pytest.raises(UntrustedRootError):
        verify_attestation(data, root=aws_root, at=T0)


def test_debug_mode_zeroes_image_pcrs(pki):
    doc = verify_attestation(_nsm(pki, debug=True).attestation(), root=pki.root_pem, at=T0)
    for index in (0, 1, 2, 8):
        assert doc.pcrs[index] == bytes(48)


def test_pcrs_from_measurements(pki):
    class M:
        pcr0, pcr1, pcr2, pcr8 = PCR0, PCR1, PCR2, None

    pcrs = pcrs_from_measurements(M())
    assert pcrs[0] == PCR0
    assert pcrs[8] == bytes(48)
    assert len(pcrs) == 16


def test_describe_and_random(pki):
    nsm = SimulatedNsm(pki, {0: PCR0}, clock=lambda: T0, random=lambda n: b"\x07" * n)
    assert nsm.describe_pcr(0).data == PCR0
    assert nsm.describe_pcr(0).locked
    assert nsm.describe_pcr(20).data == bytes(48)
    assert not nsm.describe_pcr(20).locked
    assert nsm.get_random(32) == b"\x07" * 32
    assert nsm.describe().digest == "SHA384"


@pytest.mark.parametrize(
    "call",
    [
        lambda n: n.describe_pcr(32),
        lambda n: n.describe_pcr(-1),
        lambda n: n.get_random(0),
        lambda n: n.get_random(257),
        lambda n: n.attestation(user_data=bytes(1025)),
    ],
    ids=["pcr32", "pcr-1", "random0", "random257", "user-data-1025"],
)
def test_bad_arguments_rejected(pki, call):
    with pytest.raises(NsmArgumentError):
        call(_nsm(pki))


def test_bad_pcr_length_rejected(pki):
    with pytest.raises(NsmArgumentError):
        SimulatedNsm(pki, {0: bytes(32)})


@pytest.mark.parametrize(
    "name", ["tiny-x86_64-unsigned", "tiny-x86_64-signed-after"], ids=["unsigned", "signed"]
)
def test_pcrs_from_eif_match_describe_eif(aws_vector, pki, name):
    import json

    from enclave.nsm.simulator import pcrs_from_eif

    expected = json.loads(aws_vector(f"eif/expected/{name}.describe-eif.json").read_text())
    measurements = expected["Measurements"]
    pcrs = pcrs_from_eif(aws_vector(f"eif/eif/{name}.eif"))
    for index in (0, 1, 2):
        assert pcrs[index].hex() == measurements[f"PCR{index}"]
    assert pcrs[8].hex() == measurements.get("PCR8", "00" * 48)
    doc = verify_attestation(
        SimulatedNsm(pki, pcrs, clock=lambda: T0).attestation(), root=pki.root_pem, at=T0
    )
    assert doc.pcrs[0].hex() == measurements["PCR0"]


def test_pcrs_from_corrupt_eif_rejected(aws_vector, tmp_path):
    from enclave.nsm.simulator import pcrs_from_eif
    from package_format.errors import PackageFormatError

    data = bytearray(aws_vector("eif/eif/tiny-x86_64-unsigned.eif").read_bytes())
    data[-10] ^= 0xFF
    bad = tmp_path / "bad.eif"
    bad.write_bytes(bytes(data))
    with pytest.raises(PackageFormatError):
        pcrs_from_eif(bad)
