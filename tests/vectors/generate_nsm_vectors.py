# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Generate tests/vectors/nsm/: one NSM message per file (specs/attestation.md §10.2).

Each file (layout: vectorlib.py): `expect:` (`success`, `NsmArgumentError` or
`NsmResponseError`), `comment:`, `call:` (the request or the response variant), then:

- `request_*`: `args:` (JSON); on success the body is the exact CBOR the encoder MUST
  write (serde_cbor's externally tagged enum); on `NsmArgumentError` the body is empty
  (refused before any ioctl).
- `response_*`: the body is what the device wrote; on success `result:` is the decoded
  value (hex for bytes, `lock data-hex` for DescribePCR).

The CBOR is written here with cbor2 from the spec's shapes, not by the code under test.
Usage: generate_nsm_vectors.py [OUT_DIR]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cbor2
from vectorlib import Vector, main, rand, write_all

OUT = Path(__file__).resolve().parent / "nsm"
DOC = rand("attestation document", 64)
RANDOM = rand("nsm random", 32)
PCR = rand("pcr 3", 48)


def _request(name: str, call: str, args: dict[str, Any], body: Any, comment: str) -> Vector:
    fields = {"expect": "success", "comment": comment, "call": call}
    fields["args"] = json.dumps({k: v.hex() if isinstance(v, bytes) else v
                                 for k, v in args.items()}, sort_keys=True)  # fmt: skip
    if body is None:
        fields["expect"] = "NsmArgumentError"
        return f"request_{name}", fields, b""
    return f"request_{name}", fields, cbor2.dumps(body)


def _response(name: str, call: str, data: bytes, comment: str, result: str | None = None) -> Vector:
    fields = {"expect": "NsmResponseError" if result is None else "success", "comment": comment}
    fields["call"] = call
    if result is not None:
        fields["result"] = result
    return f"response_{name}", fields, data


def requests() -> list[Vector]:
    big = bytes(1025)
    return [
        _request("describe_nsm", "DescribeNSM", {}, "DescribeNSM", "a bare text string"),
        _request("get_random", "GetRandom", {}, "GetRandom", "a bare text string"),
        _request("describe_pcr_3", "DescribePCR", {"index": 3},
                 {"DescribePCR": {"index": 3}}, "a one-key map"),
        _request("describe_pcr_31", "DescribePCR", {"index": 31},
                 {"DescribePCR": {"index": 31}}, "the last PCR"),
        _request("describe_pcr_32", "DescribePCR", {"index": 32}, None, "index past 31"),
        _request("attestation_nonce", "Attestation", {"nonce": b"\x01" * 20},
                 {"Attestation": {"user_data": None, "nonce": b"\x01" * 20, "public_key": None}},
                 "absent fields are null, in the order user_data, nonce, public_key"),
        _request("attestation_max_fields", "Attestation",
                 {"user_data": bytes(1024), "nonce": bytes(1024), "public_key": bytes(1024)},
                 {"Attestation": {"user_data": bytes(1024), "nonce": bytes(1024),
                                  "public_key": bytes(1024)}}, "each field at 1024 bytes"),
        _request("attestation_user_data_1025", "Attestation", {"user_data": big}, None,
                 "user_data over 1024 bytes"),
    ]  # fmt: skip


def responses() -> list[Vector]:
    att = cbor2.dumps({"Attestation": {"document": DOC}})
    return [
        _response("attestation", "Attestation", att, "the document", DOC.hex()),
        _response("get_random", "GetRandom", cbor2.dumps({"GetRandom": {"random": RANDOM}}),
                  "32 random bytes", RANDOM.hex()),
        _response("describe_pcr", "DescribePCR",
                  cbor2.dumps({"DescribePCR": {"lock": True, "data": PCR}}), "a locked PCR",
                  f"True {PCR.hex()}"),
        _response("error_code", "Attestation", cbor2.dumps({"Error": "InvalidArgument"}),
                  "an Error response names its code"),
        _response("other_variant", "Attestation", cbor2.dumps({"GetRandom": {"random": b""}}),
                  "the answer to another request"),
        _response("trailing_bytes", "Attestation", att + b"\x00", "a byte after the item"),
        _response("not_cbor", "Attestation", b"\xff", "a lone break byte"),
        _response("mistyped_field", "Attestation",
                  cbor2.dumps({"Attestation": {"document": "text"}}), "document as text"),
        _response("lock_not_bool", "DescribePCR",
                  cbor2.dumps({"DescribePCR": {"lock": 1, "data": PCR}}), "lock 1, not true"),
        _response("fields_not_map", "GetRandom", cbor2.dumps({"GetRandom": [RANDOM]}),
                  "fields as an array"),
    ]  # fmt: skip


def generate(out: Path = OUT) -> list[Path]:
    return write_all(out, [*requests(), *responses()])


if __name__ == "__main__":
    main(OUT, generate)
