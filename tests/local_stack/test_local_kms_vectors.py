# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Every vector of tests/vectors/local-kms/ gives its `expect:` (specs/local-kms.md §4, §5.2)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from vector_files import assert_regenerates, files, read

from local_stack.attested import AttestedRecipient, RecipientRejectedError, check_recipient
from package_format.key_policy import IMAGE_SHA384, attestation_condition_keys

VECTORS = files("local-kms")


def _check(fields: dict[str, str], data: bytes) -> AttestedRecipient:
    return check_recipient(
        algorithm=fields["algorithm"],
        document=data,
        root_pem=bytes.fromhex(fields["root"]),
        now=datetime.fromisoformat(fields["now"]),
        max_age=timedelta(seconds=int(fields["max age"])),
        max_skew=timedelta(seconds=int(fields["max skew"])),
    )


def test_vector_set_covers_every_recipient_check() -> None:
    found = {read(p)[0].get("field") for p in VECTORS}
    assert found == {None, "algorithm", "document", "timestamp", "public_key"}


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_local_kms_vector(path: Path) -> None:
    fields, data = read(path)
    if fields["expect"] == "success":
        recipient = _check(fields, data)
        keys = attestation_condition_keys(recipient.pcrs)
        assert keys[IMAGE_SHA384] == fields["image sha384"]
        return
    assert fields["expect"] == RecipientRejectedError.__name__
    with pytest.raises(RecipientRejectedError) as info:
        _check(fields, data)
    assert info.value.field == fields["field"]


def test_regenerated_vectors_are_byte_identical(tmp_path: Path) -> None:
    assert_regenerates("local_kms", "local-kms", tmp_path)
