# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Evaluate a KMS key policy the way AWS documents it (the local KMS front uses it).

specs/local-kms.md §5; vectors: tests/vectors/key-policy/eval_*. An explicit Deny wins;
otherwise one Allow statement must match the action, the principal, the resource and every
condition; otherwise the request is implicitly denied. Anything this evaluator does not
understand (an unknown operator, element or shape) denies the request: it fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from package_format.key_policy.conditions import iam_wildcard
from package_format.key_policy.errors import PolicyNotUnderstoodError as PolicyError

__all__ = [
    "Decision",
    "RequestContext",
    "evaluate",
]

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_ARN_ACCOUNT_RE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):")


@dataclass(frozen=True)
class RequestContext:
    """What the evaluator knows about one request.

    Attributes:
        action: the KMS action, e.g. "kms:Decrypt".
        principal_arn: the caller's ARN ("" when the caller is unknown).
        resource_arn: the key's ARN.
        condition_keys: single-valued condition keys present in the request
            (names compared case-insensitively, as IAM does).
        multi_keys: multi-valued condition keys (e.g. kms:EncryptionContextKeys).
    """

    action: str
    principal_arn: str
    resource_arn: str
    condition_keys: Mapping[str, str] = field(default_factory=dict)
    multi_keys: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def lookup(self, key: str) -> list[str] | None:
        """Return the values of a condition key, or None when the request lacks it."""
        wanted = key.lower()
        for name, value in self.condition_keys.items():
            if name.lower() == wanted:
                return [value]
        for name, values in self.multi_keys.items():
            if name.lower() == wanted:
                return list(values)
        return None


@dataclass(frozen=True)
class Decision:
    """The outcome: allowed or not, and which statement decided (for messages).

    `rule` is the spec's name for what decided (specs/local-kms.md §5.1): `explicit-deny`,
    `allow`, `implicit-deny` or `not-understood` (the evaluator failed closed).
    """

    allowed: bool
    reason: str
    rule: str = ""


def evaluate(policy: Mapping[str, Any], request: RequestContext) -> Decision:
    """Decide whether `policy` allows `request`.

    Returns:
        The decision; `allowed` is False for an explicit or implicit deny and
        for any policy the evaluator cannot fully understand.
    """
    try:
        statements = _statements(policy)
        allow_sid: str | None = None
        for index, statement in enumerate(statements):
            sid = str(statement.get("Sid", f"#{index}"))
            effect = statement.get("Effect")
            if not _statement_matches(statement, request, sid):
                continue
            if effect == "Deny":
                return Decision(False, f"explicitly denied by statement {sid}", "explicit-deny")
            allow_sid = allow_sid or sid
    except PolicyError as exc:
        return Decision(False, f"key policy not understood: {exc}", "not-understood")
    if allow_sid is None:
        return Decision(
            False, "no statement of the key policy allows this request", "implicit-deny"
        )
    return Decision(True, f"allowed by statement {allow_sid}", "allow")


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if not isinstance(policy, Mapping):
        raise PolicyError("policy must be a JSON object")
    statements = policy.get("Statement")
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, Mapping) for s in statements):
        raise PolicyError("Statement must be an object or a list of objects")
    return statements


_KNOWN_ELEMENTS = frozenset(
    {"Sid", "Effect", "Principal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)


def _statement_matches(statement: Mapping[str, Any], request: RequestContext, sid: str) -> bool:
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise PolicyError(f"statement {sid}: Effect must be Allow or Deny")
    unknown = set(statement) - _KNOWN_ELEMENTS
    if unknown:
        raise PolicyError(f"statement {sid}: unsupported element {min(unknown)}")
    return (
        _principal_matches(statement.get("Principal"), request.principal_arn, sid)
        # IAM compares actions case-insensitively, ARNs exactly.
        and _element_matches(statement, "Action", request.action, sid, ignore_case=True)
        and _element_matches(statement, "Resource", request.resource_arn, sid, ignore_case=False)
        and _conditions_match(statement.get("Condition", {}), request, sid)
    )


def _string_list(value: Any, what: str, sid: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise PolicyError(f"statement {sid}: {what} must be a string or a list of strings")


def _principal_matches(principal: Any, caller: str, sid: str) -> bool:
    # specs/local-kms.md §5.2: "*", {"AWS": "*"}, an ARN, an account id or
    # arn:aws:iam::<account>:root (the whole account, as if IAM allowed it).
    if principal is None:
        raise PolicyError(f"statement {sid}: a key policy statement needs a Principal")
    if principal == "*":
        return True
    if not isinstance(principal, Mapping) or set(principal) != {"AWS"}:
        raise PolicyError(f"statement {sid}: only AWS principals are supported")
    for entry in _string_list(principal["AWS"], "Principal.AWS", sid):
        if entry in ("*", caller):
            return True
        account = _account_of(entry)
        if account is not None and _account_of(caller) == account and _is_account(entry):
            return True
    return False


def _is_account(entry: str) -> bool:
    return bool(_ACCOUNT_RE.match(entry)) or entry.endswith(":root")


def _account_of(arn_or_id: str) -> str | None:
    if _ACCOUNT_RE.match(arn_or_id):
        return arn_or_id
    match = _ARN_ACCOUNT_RE.match(arn_or_id)
    return match.group(1) if match else None


def _element_matches(
    statement: Mapping[str, Any], element: str, value: str, sid: str, *, ignore_case: bool
) -> bool:
    # specs/local-kms.md §5.1: exactly one of X / NotX; wildcards; NotX matches the rest.
    has, has_not = element in statement, f"Not{element}" in statement
    if has == has_not:
        raise PolicyError(f"statement {sid}: exactly one of {element} and Not{element} is required")
    key = element if has else f"Not{element}"
    patterns = _string_list(statement[key], key, sid)
    hit = any(iam_wildcard(p, value, ignore_case=ignore_case) for p in patterns)
    return hit if has else not hit


def _conditions_match(conditions: Any, request: RequestContext, sid: str) -> bool:
    if not isinstance(conditions, Mapping):
        raise PolicyError(f"statement {sid}: Condition must be an object")
    for operator, block in conditions.items():
        if not isinstance(block, Mapping) or not block:
            raise PolicyError(f"statement {sid}: {operator} must map keys to values")
        for key, expected in block.items():
            values = _string_list(expected, f"{operator} {key}", sid)
            if not _condition_holds(str(operator), str(key), values, request, sid):
                return False
    return True


def _condition_holds(
    operator: str, key: str, expected: list[str], request: RequestContext, sid: str
) -> bool:
    # IAM: "ForAnyValue:"/"ForAllValues:" set qualifiers, "...IfExists" suffix.
    qualifier = ""
    for prefix in ("ForAnyValue:", "ForAllValues:"):
        if operator.startswith(prefix):
            qualifier, operator = prefix, operator[len(prefix) :]
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base == "Null":
        present = request.lookup(key) is not None
        if any(v.lower() not in ("true", "false") for v in expected):
            raise PolicyError(f"statement {sid}: Null takes true or false")
        return any(v.lower() == ("false" if present else "true") for v in expected)
    if base not in _OPERATORS:
        raise PolicyError(f"statement {sid}: unsupported condition operator {operator}")
    compare, negated = _OPERATORS[base]
    actual = request.lookup(key)
    if actual is None:
        # IAM: a key absent from the request fails a condition, except that a
        # negated operator then holds (the value is not equal to anything) and
        # "...IfExists" or "ForAllValues:" hold vacuously.
        return if_exists or negated or qualifier == "ForAllValues:"
    # One flag per value in the request: does it match one of the policy's values?
    in_set = [any(compare(want, have) for want in expected) for have in actual]
    if qualifier == "ForAllValues:":
        return all(not hit for hit in in_set) if negated else all(in_set)
    # Single-valued keys and "ForAnyValue:": one request value decides.
    return any(not hit for hit in in_set) if negated else any(in_set)


def _str_eq(want: str, have: str) -> bool:
    return want == have


def _str_eq_ic(want: str, have: str) -> bool:
    return want.casefold() == have.casefold()


def _str_like(want: str, have: str) -> bool:
    return iam_wildcard(want, have, ignore_case=False)


# Operator -> (comparison, negated). Anything else fails closed.
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (_str_eq, False),
    "StringNotEquals": (_str_eq, True),
    "StringEqualsIgnoreCase": (_str_eq_ic, False),
    "StringNotEqualsIgnoreCase": (_str_eq_ic, True),
    "StringLike": (_str_like, False),
    "StringNotLike": (_str_like, True),
}
