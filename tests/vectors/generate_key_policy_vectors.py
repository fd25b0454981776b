# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Generate tests/vectors/key-policy/: one scenario per file (specs/key-policy.md §7).

Three areas, one file each scenario (layout: vectorlib.py):

- `build_*`: the writer's inputs (JSON body `input`) and `expect: success` with the
  policy it MUST write (`policy`), or `expect: PolicyInputError` and `field:` the input
  at fault (specs/key-policy.md §3).
- `check_*`: a policy and `expect: success` (no finding) or `expect: findings` with
  `codes:` the finding codes, sorted (specs/key-policy.md §5).
- `eval_*`: a policy, a KMS request (action, caller, key, encryption context, attested
  PCRs) and `expect: allow` or `expect: deny` with `rule:` the spec's rule that decided
  (specs/local-kms.md §5.1). The request's condition keys are derived as the local KMS
  front derives them (specs/local-kms.md §5.2). Decisions are written here from the spec,
  not computed by the evaluator, so the test checks the evaluator against them.

PCRs come from fixed test randomness. Usage: generate_key_policy_vectors.py [OUT_DIR]
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from vectorlib import Vector, canonical_json, main, rand, write_all

from package_format.key_policy import add_revocation, build_policy
from package_format.key_policy.model import PolicyRequest

OUT = Path(__file__).resolve().parent / "key-policy"
ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-0000-4000-8000-000000000001"
ENCLAVE = f"arn:aws:iam::{ACCOUNT}:role/enclave-parent"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/key-admin"
OWNER = f"arn:aws:iam::{ACCOUNT}:role/owner-ci"
STRANGER = "arn:aws:iam::999988887777:role/someone"
PCR0 = rand("pcr0", 48).hex()
PCR8 = rand("pcr8", 48).hex()
OTHER_PCR0 = rand("other pcr0", 48).hex()

INPUT: dict[str, Any] = {
    "account_id": ACCOUNT,
    "pcr0": PCR0,
    "pcr8": PCR8,
    "bundle_names": ["demo"],
    "bundle_version": None,
    "enclave_principal": ENCLAVE,
    "admin_principals": [ADMIN],
    "owner_principal": OWNER,
}


def _request(**change: Any) -> PolicyRequest:
    args = {**INPUT, **change}
    args["bundle_names"] = tuple(args["bundle_names"])
    args["admin_principals"] = tuple(args["admin_principals"])
    return PolicyRequest(**args)


POLICY = build_policy(_request())
REVOKED = add_revocation(POLICY, "demo", "1.0.0")


def _build(name: str, comment: str, field: str | None = None, **change: Any) -> Vector:
    body: dict[str, Any] = {"input": {**INPUT, **change}}
    if field is None:
        body["policy"] = build_policy(_request(**change))
        fields = {"expect": "success", "comment": comment}
    else:
        fields = {"expect": "PolicyInputError", "comment": comment, "field": field}
    return f"build_{name}", fields, canonical_json(body)


def build_vectors() -> list[Vector]:
    zero = "0" * 96
    return [
        _build("ok", "the generated policy for one bundle, PCR0 and PCR8, an owner"),
        _build("ok_no_pcr8", "an unsigned image: PCR0 only", pcr8=None),
        _build("ok_no_owner", "no owner principal: no OwnerPackNoDecrypt", owner_principal=None),
        _build("ok_version", "one version pinned in the context", bundle_version="1.0.0"),
        _build("ok_several_names", "two bundles share one key", bundle_names=["a", "b"]),
        _build("ok_duplicate_names", "duplicates dropped, order kept", bundle_names=["b", "a", "b"]),
        _build("ok_uppercase_pcr", "PCRs written lowercase", pcr0=PCR0.upper()),
        _build("pcr0_all_zero", "debug-mode PCR0 refused", "pcr0", pcr0=zero),
        _build("pcr8_all_zero", "debug-mode PCR8 refused", "pcr8", pcr8=zero),
        _build("pcr0_short", "95 hex digits", "pcr0", pcr0=PCR0[:95]),
        _build("pcr0_0x_prefix", "0x prefix is not hex", "pcr0", pcr0="0x" + PCR0[:94]),
        _build("admin_other_account", "admin outside the account", "admin_principals",
               admin_principals=[STRANGER]),
        _build("no_admin", "nobody could change the policy", "admin_principals",
               admin_principals=[]),
        _build("enclave_not_arn", "enclave principal not an ARN", "enclave_principal",
               enclave_principal="enclave-parent"),
        _build("owner_other_account", "owner outside the account", "owner_principal",
               owner_principal=STRANGER),
        _build("account_not_12_digits", "bad account id", "account_id", account_id="1234"),
        _build("empty_name", "empty bundle name", "bundle_names", bundle_names=[""]),
        _build("version_with_two_names", "a version needs one name", "bundle_version",
               bundle_names=["a", "b"], bundle_version="1.0.0"),
    ]  # fmt: skip


def _stmt(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    (stmt,) = [s for s in policy["Statement"] if s["Sid"] == sid]
    return stmt


def _mutate(change: Any) -> dict[str, Any]:
    policy = copy.deepcopy(POLICY)
    change(policy, _stmt(policy, "AttestedEnclaveOnly"))
    return policy


def _check(name: str, comment: str, policy: Any, codes: list[str]) -> Vector:
    fields = {"expect": "findings" if codes else "success", "comment": comment}
    if codes:
        fields["codes"] = ",".join(sorted(codes))
    return f"check_{name}", fields, canonical_json({"policy": policy})


def _set_cond(op: str, key: str, value: Any) -> Any:
    return lambda _p, s: s["Condition"].__setitem__(op, {key: value})


def check_vectors() -> list[Vector]:
    img = "kms:RecipientAttestation:ImageSha384"
    no_att = lambda _p, s: s["Condition"].pop("StringEqualsIgnoreCase")  # noqa: E731
    return [
        _check("generated_ok", "the generated policy has no finding", POLICY, []),
        _check("revoked_ok", "with a revocation, still none", REVOKED, []),
        _check("not_a_policy", "no Statement", {"Version": "2012-10-17"}, ["not-a-policy"]),
        _check("statement_not_object", "a string statement", {"Statement": ["x"]},
               ["not-a-policy"]),
        _check("allow_any_principal", 'Principal "*"',
               _mutate(lambda _p, s: s.__setitem__("Principal", "*")), ["allow-any-principal"]),
        _check("not_principal_allow", "Allow with NotPrincipal",
               _mutate(lambda _p, s: s.__setitem__("NotPrincipal", {"AWS": ADMIN})),
               ["not-principal-allow"]),
        _check("decrypt_without_attestation", "no PCR condition", _mutate(no_att),
               ["decrypt-without-attestation"]),
        _check("attestation_if_exists", "IfExists passes calls without attestation",
               _mutate(lambda _p, s: s["Condition"].__setitem__(
                   "StringEqualsIgnoreCaseIfExists",
                   s["Condition"].pop("StringEqualsIgnoreCase"))),
               ["attestation-if-exists", "decrypt-without-attestation"]),
        _check("wildcard_decrypt", "kms:* instead of the two actions",
               _mutate(lambda _p, s: s.__setitem__("Action", "kms:*")), ["wildcard-decrypt"]),
        _check("all_zero_pcr", "a debug-mode PCR0",
               _mutate(_set_cond("StringEqualsIgnoreCase", img, "0" * 96)), ["all-zero-pcr"]),
        _check("malformed_pcr", "0x-prefixed PCR0",
               _mutate(_set_cond("StringEqualsIgnoreCase", img, "0x" + PCR0)), ["malformed-pcr"]),
        _check("case_sensitive_pcr", "uppercase under StringEquals never matches",
               _mutate(lambda _p, s: (s["Condition"].pop("StringEqualsIgnoreCase"),
                                      s["Condition"]["StringEquals"].update({img: PCR0.upper()}))),
               ["case-sensitive-pcr"]),
        _check("no_encryption_context", "not bound to the bundle",
               _mutate(lambda _p, s: s["Condition"].pop("StringEquals")),
               ["no-encryption-context"]),
    ]  # fmt: skip


def _eval(name: str, expect: str, rule: str, comment: str, **request: Any) -> Vector:
    policy = request.pop("policy", POLICY)
    req = {
        "action": "kms:Decrypt",
        "principal": ENCLAVE,
        "resource": KEY,
        "context": {"bundle": "demo", "version": "1.0.0"},
        "pcrs": {"0": PCR0, "8": PCR8},
    }
    req.update(request)
    body = {"policy": policy, "request": req}
    return f"eval_{name}", {"expect": expect, "rule": rule, "comment": comment}, canonical_json(body)


def _one(stmt: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Sid": "S", "Resource": "*", **stmt}]}


ANYONE = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt"}


def eval_vectors() -> list[Vector]:  # noqa: PLR0915 - one line per scenario
    v = [
        _eval("enclave_decrypt", "allow", "allow", "attested enclave, right PCRs and context"),
        _eval("enclave_generate_data_key", "allow", "allow", "the enclave may also generate",
              action="kms:GenerateDataKey"),
        _eval("wrong_pcr0", "deny", "implicit-deny", "another image",
              pcrs={"0": OTHER_PCR0, "8": PCR8}),
        _eval("no_attestation", "deny", "implicit-deny", "no Recipient: no PCR keys", pcrs={}),
        _eval("pcr8_missing", "deny", "implicit-deny", "an unsigned image: no PCR8",
              pcrs={"0": PCR0}),
        _eval("other_bundle", "deny", "implicit-deny", "the context names another bundle",
              context={"bundle": "other"}),
        _eval("no_context", "deny", "implicit-deny", "no encryption context", context={}),
        _eval("stranger", "deny", "implicit-deny", "a caller of another account",
              principal=STRANGER),
        _eval("unknown_caller", "deny", "implicit-deny", "empty principal", principal=""),
        _eval("revoked_version", "deny", "explicit-deny", "Deny beats the enclave's Allow",
              policy=REVOKED),
        _eval("revoked_other_version", "allow", "allow", "only 1.0.0 is revoked",
              policy=REVOKED, context={"bundle": "demo", "version": "2.0.0"}),
        _eval("owner_generate_data_key", "allow", "allow", "the owner packs",
              principal=OWNER, action="kms:GenerateDataKey", pcrs={}),
        _eval("owner_decrypt", "deny", "implicit-deny", "the owner never decrypts",
              principal=OWNER, pcrs={}),
        _eval("admin_put_key_policy", "allow", "allow", "administration", principal=ADMIN,
              action="kms:PutKeyPolicy", context={}, pcrs={}),
        _eval("admin_decrypt", "deny", "implicit-deny", "NotAction excludes Decrypt",
              principal=ADMIN, pcrs={}),
        _eval("admin_create_grant", "deny", "implicit-deny", "a grant could hand out Decrypt",
              principal=ADMIN, action="kms:CreateGrant", pcrs={}),
        _eval("action_case_insensitive", "allow", "allow", "kms:decrypt = kms:Decrypt",
              action="kms:decrypt"),
        _eval("not_a_policy", "deny", "not-understood", "no Statement",
              policy={"Version": "2012-10-17"}),
        _eval("unknown_operator", "deny", "not-understood", "NumericEquals is not implemented",
              policy=_one({**ANYONE, "Condition": {"NumericEquals": {"kms:X": "1"}}})),
        _eval("not_principal", "deny", "not-understood", "NotPrincipal is not implemented",
              policy=_one({"Effect": "Allow", "NotPrincipal": {"AWS": ADMIN},
                           "Action": "kms:Decrypt"})),
        _eval("bad_effect", "deny", "not-understood", "Effect Permit",
              policy=_one({**ANYONE, "Effect": "Permit"})),
        _eval("action_and_not_action", "deny", "not-understood", "both Action and NotAction",
              policy=_one({**ANYONE, "NotAction": "kms:Encrypt"})),
        _eval("statement_object", "allow", "allow", "Statement as one object",
              policy={"Statement": {**ANYONE, "Resource": "*"}}),
        _eval("account_root_principal", "allow", "allow", "root ARN covers the account",
              policy=_one({**ANYONE, "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}})),
        _eval("account_id_principal", "allow", "allow", "an account id covers the account",
              policy=_one({**ANYONE, "Principal": {"AWS": ACCOUNT}})),
        _eval("resource_mismatch", "deny", "implicit-deny", "the statement names another key",
              policy=_one({**ANYONE, "Resource": KEY[:-1] + "2"})),
        _eval("resource_wildcard", "allow", "allow", "key/* matches",
              policy=_one({**ANYONE, "Resource": KEY.rsplit("/", 1)[0] + "/*"})),
        _eval("if_exists_absent", "allow", "allow", "IfExists holds without the key",
              pcrs={}, policy=_one({**ANYONE, "Condition": {
                  "StringEqualsIfExists": {"kms:RecipientAttestation:ImageSha384": PCR0}}})),
        _eval("negated_absent", "allow", "allow", "StringNotEquals holds without the key",
              pcrs={}, policy=_one({**ANYONE, "Condition": {
                  "StringNotEquals": {"kms:RecipientAttestation:ImageSha384": PCR0}}})),
        _eval("null_true", "allow", "allow", "Null true: no attestation", pcrs={},
              policy=_one({**ANYONE, "Condition": {
                  "Null": {"kms:RecipientAttestation:ImageSha384": "true"}}})),
        _eval("null_false", "deny", "implicit-deny", "Null false: attestation required",
              pcrs={}, policy=_one({**ANYONE, "Condition": {
                  "Null": {"kms:RecipientAttestation:ImageSha384": "false"}}})),
        _eval("for_all_values", "deny", "implicit-deny", "a context key outside the set",
              policy=_one({**ANYONE, "Condition": {
                  "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["bundle"]}}})),
        _eval("for_any_value", "allow", "allow", "one context key in the set",
              policy=_one({**ANYONE, "Condition": {
                  "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["bundle"]}}})),
        _eval("string_like", "allow", "allow", "StringLike on a context value",
              policy=_one({**ANYONE, "Condition": {
                  "StringLike": {"kms:EncryptionContext:bundle": "de?o*"}}})),
        _eval("condition_key_case", "allow", "allow", "condition key names ignore case",
              policy=_one({**ANYONE, "Condition": {
                  "StringEquals": {"KMS:ENCRYPTIONCONTEXT:BUNDLE": "demo"}}})),
        _eval("caller_account", "allow", "allow", "kms:CallerAccount from the caller's ARN",
              policy=_one({**ANYONE, "Condition": {
                  "StringEquals": {"kms:CallerAccount": ACCOUNT}}})),
    ]  # fmt: skip
    return v


def generate(out: Path = OUT) -> list[Path]:
    return write_all(out, [*build_vectors(), *check_vectors(), *eval_vectors()])


if __name__ == "__main__":
    main(OUT, generate)
