# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`check_policy`: the policy shapes that let a user get the key around the enclave.

Vectors: tests/vectors/key-policy/check_*. Codes (specs/key-policy.md §5): not-a-policy,
allow-any-principal, not-principal-allow,
decrypt-without-attestation, attestation-if-exists, wildcard-decrypt,
all-zero-pcr, malformed-pcr, case-sensitive-pcr, no-encryption-context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from package_format.key_policy.conditions import (
    ATTESTATION_PREFIX,
    CONTEXT_PREFIX,
    IMAGE_KEYS,
    PCR8_KEY,
    action_matches,
    as_list,
    decrypting_actions,
)

__all__ = ["Finding", "check_policy"]

# PCR8 (the image signer) pins images as well: a data provider's policy may name it alone
# (specs/key-policy.md §3.1).
_PINNING_KEYS = IMAGE_KEYS | {PCR8_KEY.lower()}


@dataclass(frozen=True)
class Finding:
    """One reason a policy is unsafe: a code of specs/key-policy.md §5, the statement, why."""

    code: str
    statement: str
    message: str

    def __str__(self) -> str:
        return f"statement {self.statement}: {self.message} [{self.code}]"


def _principals(stmt: dict[str, Any]) -> list[str]:
    p = stmt.get("Principal")
    if p == "*":
        return ["*"]
    if isinstance(p, dict):
        return [str(v) for values in p.values() for v in as_list(values)]
    return []


def _pcr_findings(sid: str, op: str, key: str, values: list[Any]) -> list[Finding]:
    out = []
    for v in values:
        text = str(v)
        if len(text) != 96 or any(c not in "0123456789abcdefABCDEF" for c in text):
            out.append(
                Finding("malformed-pcr", sid, f"{key} value {text[:24]!r} is not 96 hex digits")
            )
        elif set(text) == {"0"}:
            out.append(
                Finding("all-zero-pcr", sid, f"{key} is all zero: any debug-mode enclave matches")
            )
        elif (
            op.lower().startswith("stringequals")
            and "ignorecase" not in op.lower()
            and text != text.lower()
        ):
            out.append(
                Finding(
                    "case-sensitive-pcr", sid, f"{key} uses uppercase hex with {op}: never matches"
                )
            )
    return out


def _conditions(stmt: dict[str, Any]) -> list[tuple[str, str, list[Any]]]:
    cond = stmt.get("Condition")
    if not isinstance(cond, dict):
        return []
    return [
        (op, key, as_list(value))
        for op, block in cond.items()
        if isinstance(block, dict)
        for key, value in block.items()
    ]


def _attestation_findings(sid: str, conds: list[tuple[str, str, list[Any]]]) -> list[Finding]:
    out: list[Finding] = []
    for op, key, values in conds:
        if key.lower().startswith(ATTESTATION_PREFIX.lower()):
            out.extend(_pcr_findings(sid, op, key, values))
            if op.lower().endswith("ifexists"):
                out.append(
                    Finding(
                        "attestation-if-exists",
                        sid,
                        f"{op} on {key} passes calls without attestation",
                    )
                )
    return out


def _check_statement(sid: str, stmt: dict[str, Any]) -> list[Finding]:
    conds = _conditions(stmt)
    out = _attestation_findings(sid, conds)
    if stmt.get("Effect") != "Allow":
        return out
    principals = _principals(stmt)
    if "*" in principals:
        out.append(Finding("allow-any-principal", sid, 'Allow with Principal "*"'))
    if "NotPrincipal" in stmt:
        out.append(
            Finding("not-principal-allow", sid, "Allow with NotPrincipal grants nearly everyone")
        )
    decrypting = decrypting_actions(stmt)
    if not decrypting:
        return out
    who = ", ".join(principals) or "?"
    attested = any(
        key.lower() in _PINNING_KEYS
        and op.lower() in {"stringequals", "stringequalsignorecase"}
        and values
        for op, key, values in conds
    )
    if not attested:
        extra = (
            " (account root: any IAM policy can then decrypt)"
            if any(p.endswith(":root") for p in principals)
            else ""
        )
        out.append(
            Finding(
                "decrypt-without-attestation",
                sid,
                f"{who} may {'/'.join(decrypting)} without a PCR0 or PCR8 attestation "
                f"condition{extra}",
            )
        )
    actions = [str(a) for a in as_list(stmt.get("Action"))]
    if "NotAction" in stmt or any(
        action_matches(a, "kms:Decrypt") and a.lower() != "kms:decrypt" for a in actions
    ):
        out.append(
            Finding(
                "wildcard-decrypt", sid, f"{who} gets kms:Decrypt through a wildcard or NotAction"
            )
        )
    if not any(key.lower().startswith(CONTEXT_PREFIX.lower()) for _, key, _ in conds):
        out.append(
            Finding(
                "no-encryption-context",
                sid,
                "decrypting statement not bound to a bundle's encryption context",
            )
        )
    return out


def check_policy(policy: Any) -> list[Finding]:
    """Every finding for a key policy document (empty when it is safe).

    Reports only; raises nothing for a malformed document (a `not-a-policy` finding).
    """
    if not isinstance(policy, dict) or not isinstance(policy.get("Statement"), list | dict):
        return [Finding("not-a-policy", "-", "no Statement list")]
    out: list[Finding] = []
    for i, stmt in enumerate(as_list(policy["Statement"])):
        if not isinstance(stmt, dict):
            out.append(Finding("not-a-policy", str(i), "statement is not an object"))
            continue
        out.extend(_check_statement(str(stmt.get("Sid", i)), stmt))
    return out
