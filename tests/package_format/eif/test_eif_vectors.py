# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 3 must-show 1: AWS's bytes, PCRs and describe-eif JSON, exactly."""

from __future__ import annotations

import io
import json

import pytest

from package_format.eif import (
    FLAG_ARCH_ARM64,
    HashAlgorithmString,
    describe,
    extend0,
    pcr_info_payload,
    read_eif,
    write_eif,
)
from package_format.eif.pcr import measure_sections
from package_format.eif.signature import PcrSignature, encode_signature_section

PCR0 = "61c4ce7b149f887c3cb4be14bd773300449df79ff05b1d1f4162cc9e76d03856c4631c5260ba55efcbaad8f832d14150"
PCR1 = "eecab200fbe01cf943c3fec7fa4d9e981db0a52d947fc95a7e3dd38f9481b5f349ecf170572a76d25c1c3a5e6b6f1667"
PCR2 = "a7856abb8324793c030bdbca080b2b52cb4e20dab9c16a3a6999fe1b2a1322f8359acc2e69c1c6ec4c0cd8cc4165dfc3"
PCR8 = "593210dba4b3e11d73fca047aa4f230ef611a4b104e9d9a7e19a1e08ef56a5fe8ffafa4b341ad3058d02721cc9e3af63"


def test_writer_reproduces_unsigned_vector_byte_for_byte(vector_sections, eif_vector):
    out = io.BytesIO()
    result = write_eif(out, vector_sections)
    expected = eif_vector("eif/tiny-x86_64-unsigned.eif")
    assert out.getvalue() == expected
    assert len(expected) == 13274
    assert result.crc32 == 0x8B1C9EF9
    assert result.size == 13274
    m = result.measurements
    assert (m.pcr0.hex(), m.pcr1.hex(), m.pcr2.hex(), m.pcr8) == (PCR0, PCR1, PCR2, None)


def test_streaming_pcrs_equal_reference_computation(vector_sections):
    sections = [(s.type.value, b"".join(s.chunks)) for s in vector_sections]
    ref = measure_sections(sections, None)
    assert ref.pcr0.hex() == PCR0
    assert ref.pcr2.hex() == PCR2


def test_aarch64_flag_changes_header_only(vector_sections):
    out = io.BytesIO()
    write_eif(out, vector_sections, flags=FLAG_ARCH_ARM64)
    image = read_eif(out)
    assert image.header.flags == 1
    assert image.crc_ok
    assert image.measurements.pcr0.hex() == PCR0


@pytest.mark.parametrize("name", ["tiny-x86_64-unsigned", "tiny-x86_64-signed-after"])
def test_describe_matches_nitro_cli_json_exactly(name, eif_vector):
    image = read_eif(io.BytesIO(eif_vector(f"eif/{name}.eif")))
    text = json.dumps(describe(image), indent=2)
    assert text + "\n" == eif_vector(f"expected/{name}.describe-eif.json").decode()


def test_signed_vector_pcr8_and_signature_verify(eif_vector):
    image = read_eif(io.BytesIO(eif_vector("eif/tiny-x86_64-signed-after.eif")))
    assert image.measurements.pcr8 is not None
    assert image.measurements.pcr8.hex() == PCR8
    assert image.measurements.pcr0.hex() == PCR0
    assert image.signature_ok()
    image.verify()


def test_hash_algorithm_string_for_nitro_cli_1_5(eif_vector):
    image = read_eif(io.BytesIO(eif_vector("eif/tiny-x86_64-unsigned.eif")))
    out = describe(image, HashAlgorithmString.NITRO_CLI_1_5)
    assert out["Measurements"]["HashAlgorithm"] == "Sha512_48 { .. }"


def test_cbor_vectors_from_upstream(eif_vector):
    vectors = json.loads(eif_vector("expected/cbor-vectors.json"))
    (info_key,) = [k for k in vectors if k.startswith("PcrInfo")]
    assert pcr_info_payload(bytes(range(48))).hex() == vectors[info_key]
    (section_key,) = [k for k in vectors if k.startswith("vec!")]
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    cose = bytes([0xD2, 0x84, 0x44, 0xA1, 0x01, 0x38, 0x22, 0xA0, 0x40, 0x40])
    assert encode_signature_section([PcrSignature(pem, cose)]).hex() == vectors[section_key]


def test_single_ramdisk_pcr2_is_extend_of_empty_hash(eif_vector):
    published = json.loads(eif_vector("expected/published-pcrs.json"))
    (value,) = published["derived constant"].values()
    ref = measure_sections([(1, b"k"), (2, b"c"), (3, b"r")], None)
    assert ref.pcr2.hex() == value
    assert (
        extend0(
            bytes.fromhex(
                "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"
            )
        ).hex()
        == value
    )
