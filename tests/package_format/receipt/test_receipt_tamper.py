# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""One flipped byte anywhere makes verification fail at the right step (specs/receipts.md §6)."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from receipt_vectors import named

from package_format.receipt import (
    DocumentInvalidError,
    FileDigest,
    InputMismatchError,
    NonceMismatchError,
    OutputMismatchError,
    PcrMismatchError,
    ReceiptError,
    ReceiptFormatError,
    ReceiptVersionError,
    RecordBundle,
    RecordHashMismatchError,
    RecordTerms,
    RunRecord,
    encode_receipt,
    parse_receipt,
    verify_inputs,
    verify_outputs,
    verify_receipt,
)

GOOD = named("receipt_ok")


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def verify(data: bytes, nonce: bytes | None = None, pcr0: bytes = GOOD.pcr0) -> RunRecord:
    return verify_receipt(data, root=GOOD.root, expect_pcrs={0: pcr0}, nonce=nonce).record


def test_good_receipt_verifies_against_the_outputs_it_names() -> None:
    record = verify(GOOD.receipt)
    assert [f.path for f in record.outputs] == sorted(GOOD.outputs)
    assert verify_outputs(record, lambda p: io.BytesIO(GOOD.outputs[p])) == 2


def test_flipped_record_byte_fails_the_record_hash() -> None:
    receipt = parse_receipt(GOOD.receipt)
    for index in range(len(receipt.record)):
        tampered = encode_receipt(flip(receipt.record, index), receipt.document)
        with pytest.raises(RecordHashMismatchError):
            verify(tampered)


def test_flipped_document_byte_fails_the_document() -> None:
    receipt = parse_receipt(GOOD.receipt)
    for index in range(0, len(receipt.document), 11):
        tampered = encode_receipt(receipt.record, flip(receipt.document, index))
        with pytest.raises(DocumentInvalidError):
            verify(tampered)


def test_flipped_receipt_file_byte_fails() -> None:
    # Any byte of the file: a format error, or the step its bytes belong to; never a pass.
    for index in range(0, len(GOOD.receipt), 13):
        with pytest.raises(ReceiptError):
            verify(flip(GOOD.receipt, index))


@pytest.mark.parametrize("path", sorted(GOOD.outputs))
def test_flipped_output_byte_fails_that_output(path: str) -> None:
    record = verify(GOOD.receipt)
    content = GOOD.outputs[path]
    for index in range(len(content)):
        files = {**GOOD.outputs, path: flip(content, index)}
        with pytest.raises(OutputMismatchError) as caught:
            verify_outputs(record, lambda p, f=files: io.BytesIO(f[p]))  # type: ignore[misc]
        assert caught.value.path == path
        assert caught.value.problem == "digest"


@pytest.mark.parametrize("path", sorted(GOOD.inputs))
def test_flipped_input_byte_fails_that_input(path: str) -> None:
    record = verify(GOOD.receipt)
    content = GOOD.inputs[path]
    for index in range(len(content)):
        files = {**GOOD.inputs, path: flip(content, index)}
        with pytest.raises(InputMismatchError) as caught:
            verify_inputs(record, lambda p, f=files: io.BytesIO(f[p]))  # type: ignore[misc]
        assert caught.value.path == path


def test_truncated_output_fails_on_size() -> None:
    record = verify(GOOD.receipt)
    files = {**GOOD.outputs, "output/metrics.json": b"{}"}
    with pytest.raises(OutputMismatchError) as caught:
        verify_outputs(record, lambda p: io.BytesIO(files[p]))
    assert caught.value.problem == "size"


def test_receipt_from_another_image_fails_the_pcr_check() -> None:
    with pytest.raises(PcrMismatchError) as caught:
        verify(GOOD.receipt, pcr0=bytes(48))
    assert caught.value.index == 0


def test_replayed_receipt_with_the_wrong_nonce_fails() -> None:
    bound = named("receipt_ok_nonce")
    assert verify(bound.receipt, nonce=bound.nonce).nonce == bound.nonce
    with pytest.raises(NonceMismatchError):
        verify(bound.receipt, nonce=b"\x01" * 16)


def test_expect_pcrs_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="expect_pcrs"):
        verify_receipt(GOOD.receipt, root=GOOD.root, expect_pcrs={})


def _record() -> RunRecord:
    return RunRecord.decode(parse_receipt(GOOD.receipt).record)


def test_record_with_a_data_bundle_and_terms_round_trips() -> None:
    data = RecordBundle(
        "data", "patients", "3.0.0", b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, "/data/p"
    )
    terms = RecordTerms(max_output_bytes=10, stdout=False, stderr=False, output_paths=("a/*",))
    record = replace(_record(), bundles=(*_record().bundles, data), terms=terms)
    again = RunRecord.decode(record.encode())
    assert again == record
    assert again.bundles[1].mount == "/data/p"
    assert again.terms == terms


def test_record_encoding_sorts_files_by_path() -> None:
    files = (FileDigest("output/b", b"\0" * 32, 1), FileDigest("output/a", b"\0" * 32, 1))
    record = replace(_record(), outputs=files)
    assert [f.path for f in RunRecord.decode(record.encode()).outputs] == ["output/a", "output/b"]


def test_record_with_unsorted_files_is_refused() -> None:
    import cbor2

    obj = cbor2.loads(_record().encode())
    obj["outputs"].reverse()
    with pytest.raises(ReceiptFormatError, match="sorted"):
        RunRecord.decode(cbor2.dumps(obj, canonical=True))


def test_record_with_an_extra_field_is_refused() -> None:
    import cbor2

    obj = cbor2.loads(_record().encode())
    obj["extra"] = 1
    with pytest.raises(ReceiptFormatError):
        RunRecord.decode(cbor2.dumps(obj, canonical=True))


def test_record_of_another_format_is_refused() -> None:
    import cbor2

    obj = cbor2.loads(_record().encode())
    obj["format"] = "nitro-bundles/run-record/v2"
    with pytest.raises(ReceiptVersionError):
        RunRecord.decode(cbor2.dumps(obj, canonical=True))


def test_receipt_with_trailing_bytes_is_refused() -> None:
    with pytest.raises(ReceiptFormatError):
        parse_receipt(GOOD.receipt + b"\0")
