# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What `receipt verify` prints, shared by both CLIs (specs/receipts.md §6.1)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from package_format.receipt.verify import VerifiedReceipt


def _iso_ms(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def receipt_json(
    verified: VerifiedReceipt, *, outputs_checked: int | None, inputs_checked: int | None
) -> dict[str, Any]:
    """Return the JSON object of a verified receipt (`--json`).

    `outputs_checked` / `inputs_checked` are the numbers of files checked, or None when the
    verifier was given no directory for them.
    """
    record, doc = verified.record, verified.document
    return {
        "verified": True,
        "verified_at": _iso_ms(int(verified.verified_at.timestamp() * 1000)),
        "module_id": doc.module_id,
        "document_timestamp": _iso_ms(doc.timestamp_ms),
        "pcrs": {str(i): doc.pcrs[i].hex() for i in sorted(doc.pcrs) if i in {0, 1, 2, 8}},
        "record_sha384": hashlib.sha384(verified.record_bytes).hexdigest(),
        "nonce": None if record.nonce is None else record.nonce.hex(),
        "bundles": [
            {
                "role": b.role,
                "name": b.name,
                "version": b.version,
                "digest": b.digest.hex(),
                "manifest_digest": b.manifest_digest.hex(),
                "signer": b.signer.hex(),
                "mount": b.mount,
            }
            for b in record.bundles
        ],
        "entrypoint": record.entrypoint,
        "args": list(record.args),
        "env": list(record.env),
        "exit_status": record.exit_status,
        "started": _iso_ms(record.started),
        "ended": _iso_ms(record.ended),
        "stdout_sha256": record.stdout.hex(),
        "stderr_sha256": record.stderr.hex(),
        "outputs": {"count": len(record.outputs), "checked": outputs_checked},
        "inputs": {"count": len(record.inputs), "checked": inputs_checked},
        "terms": None
        if record.terms is None
        else {
            "max_output_bytes": record.terms.max_output_bytes,
            "stdout": record.terms.stdout,
            "stderr": record.terms.stderr,
            "output_paths": None
            if record.terms.output_paths is None
            else list(record.terms.output_paths),
        },
    }


def summary_lines(
    verified: VerifiedReceipt, *, outputs_checked: int | None, inputs_checked: int | None
) -> list[str]:
    """Return the human summary of a verified receipt, one line per fact."""
    record, doc = verified.record, verified.document
    lines = [
        f"receipt: verified, signed by {doc.module_id} at {_iso_ms(doc.timestamp_ms)}",
        f"  image:      pcr0 {doc.pcrs[0].hex()[:32]}...",
    ]
    for b in record.bundles:
        where = f" at {b.mount}" if b.mount else ""
        lines.append(
            f"  bundle:     {b.role} {b.name} {b.version}{where} (sha256 {b.digest.hex()[:16]}...)"
        )
    args = " ".join(record.args)
    took = max(0, record.ended - record.started)
    lines.append(f"  run:        {record.entrypoint} {args}".rstrip())
    lines.append(f"  ended:      exit status {record.exit_status} after {took} ms")
    lines.append(f"  nonce:      {'none' if record.nonce is None else record.nonce.hex()}")
    for name, entries, checked in (
        ("outputs", record.outputs, outputs_checked),
        ("inputs", record.inputs, inputs_checked),
    ):
        state = "not checked" if checked is None else f"{checked} checked, all match"
        lines.append(f"  {name + ':':<11} {len(entries)} file(s), {state}")
    return lines
