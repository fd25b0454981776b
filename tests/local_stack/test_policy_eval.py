# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Key-policy evaluation: deny wins, allow needs every element, unknowns fail closed."""

from __future__ import annotations

import pytest

from package_format.key_policy import RequestContext, attestation_condition_keys, evaluate

ACCOUNT = "123456789012"
OWNER = f"arn:aws:iam::{ACCOUNT}:role/owner"
PARENT = f"arn:aws:iam::{ACCOUNT}:role/enclave-parent"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
PCR0_A = bytes(range(48))
PCR0_B = bytes(reversed(range(48)))


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


ENCLAVE_ONLY = {
    "Sid": "EnclaveOnly",
    "Effect": "Allow",
    "Principal": {"AWS": PARENT},
    "Action": ["kms:Decrypt", "kms:GenerateRandom"],
    "Resource": "*",
    "Condition": {
        "StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": PCR0_A.hex().upper()},
        "StringEquals": {"kms:EncryptionContext:bundle": "demo"},
    },
}
OWNER_PACK = {
    "Sid": "OwnerPack",
    "Effect": "Allow",
    "Principal": {"AWS": OWNER},
    "Action": "kms:GenerateDataKey",
    "Resource": "*",
}
ADMIN = {
    "Sid": "Admin",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "NotAction": ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateRandom"],
    "Resource": "*",
}
POLICY = policy(ADMIN, OWNER_PACK, ENCLAVE_ONLY)


def ctx(action="kms:Decrypt", principal=PARENT, pcr0=PCR0_A, context=None, **kw):
    keys = attestation_condition_keys({0: pcr0, 1: bytes(48)}) if pcr0 is not None else {}
    for name, value in (context if context is not None else {"bundle": "demo"}).items():
        keys[f"kms:EncryptionContext:{name}"] = value
    return RequestContext(action, principal, kw.get("resource", KEY), keys)


def test_attested_decrypt_with_matching_pcr0_allowed():
    decision = evaluate(POLICY, ctx())
    assert decision.allowed
    assert "EnclaveOnly" in decision.reason


def test_other_image_pcr0_denied():
    assert not evaluate(POLICY, ctx(pcr0=PCR0_B)).allowed


def test_debug_enclave_zero_pcr0_denied():
    assert not evaluate(POLICY, ctx(pcr0=bytes(48))).allowed


def test_missing_attestation_denied_because_condition_key_absent():
    assert not evaluate(POLICY, ctx(pcr0=None)).allowed


def test_wrong_encryption_context_denied():
    assert not evaluate(POLICY, ctx(context={"bundle": "other"})).allowed


def test_missing_encryption_context_denied():
    assert not evaluate(POLICY, ctx(context={})).allowed


def test_encryption_context_condition_key_name_is_case_insensitive():
    assert evaluate(POLICY, ctx(context={"BUNDLE": "demo"})).allowed


def test_encryption_context_value_is_case_sensitive():
    assert not evaluate(POLICY, ctx(context={"bundle": "DEMO"})).allowed


def test_other_principal_denied():
    assert not evaluate(POLICY, ctx(principal=OWNER)).allowed


def test_owner_generate_data_key_without_attestation_allowed():
    assert evaluate(POLICY, ctx(action="kms:GenerateDataKey", principal=OWNER, pcr0=None)).allowed


def test_owner_cannot_decrypt_through_account_root_statement():
    assert not evaluate(POLICY, ctx(action="kms:Decrypt", principal=OWNER, pcr0=None)).allowed


def test_account_root_principal_matches_account_members():
    decision = evaluate(POLICY, ctx(action="kms:DescribeKey", principal=OWNER, pcr0=None))
    assert decision.allowed
    assert "Admin" in decision.reason


def test_account_root_does_not_match_other_account():
    other = "arn:aws:iam::999999999999:role/owner"
    assert not evaluate(POLICY, ctx(action="kms:DescribeKey", principal=other)).allowed


def test_explicit_deny_wins_over_allow():
    deny = {
        "Sid": "NoDebug",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:RecipientAttestation:PCR1": bytes(48).hex()}},
    }
    decision = evaluate(policy(ENCLAVE_ONLY, deny), ctx())
    assert not decision.allowed
    assert "NoDebug" in decision.reason


def test_negated_operator_holds_when_key_absent():
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": "ab"}},
    }
    allow_all = {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}
    assert not evaluate(policy(allow_all, deny), ctx(pcr0=None)).allowed


def test_pcr_condition_with_value_list_matches_any():
    stmt = dict(ENCLAVE_ONLY)
    stmt["Condition"] = {
        "StringEqualsIgnoreCase": {
            "kms:RecipientAttestation:PCR0": [PCR0_B.hex(), PCR0_A.hex()],
        }
    }
    assert evaluate(policy(stmt), ctx()).allowed


def test_string_like_encryption_context():
    stmt = dict(ENCLAVE_ONLY)
    stmt["Condition"] = {"StringLike": {"kms:EncryptionContext:bundle": "de*"}}
    assert evaluate(policy(stmt), ctx()).allowed
    assert not evaluate(policy(stmt), ctx(context={"bundle": "xdemo"})).allowed


def test_if_exists_holds_when_key_absent():
    stmt = dict(ENCLAVE_ONLY)
    stmt["Condition"] = {"StringEqualsIfExists": {"kms:EncryptionContext:tenant": "t1"}}
    assert evaluate(policy(stmt), ctx()).allowed


def test_null_operator():
    stmt = dict(ENCLAVE_ONLY)
    stmt["Condition"] = {"Null": {"kms:RecipientAttestation:ImageSha384": "false"}}
    assert evaluate(policy(stmt), ctx()).allowed
    assert not evaluate(policy(stmt), ctx(pcr0=None)).allowed


def test_for_all_values_encryption_context_keys():
    stmt = dict(ENCLAVE_ONLY)
    stmt["Condition"] = {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["a", "b"]}}
    ok = RequestContext("kms:Decrypt", PARENT, KEY, {}, {"kms:EncryptionContextKeys": ["a"]})
    bad = RequestContext("kms:Decrypt", PARENT, KEY, {}, {"kms:EncryptionContextKeys": ["a", "c"]})
    assert evaluate(policy(stmt), ok).allowed
    assert not evaluate(policy(stmt), bad).allowed


@pytest.mark.parametrize(
    "mutation",
    [
        {"Condition": {"NumericEquals": {"kms:EncryptionContext:bundle": "1"}}},
        {"Condition": {"NotStringEquals": {"kms:EncryptionContext:bundle": "demo"}}},
        {"Condition": {"StringEquals": "demo"}},
        {"Condition": {"Null": {"kms:EncryptionContext:bundle": "maybe"}}},
        {"Principal": {"Service": "ec2.amazonaws.com"}},
        {"NotPrincipal": {"AWS": OWNER}},
        {"Effect": "Maybe"},
        {"Action": []},
        {"NotAction": "kms:Encrypt"},
    ],
    ids=[
        "numeric-operator",
        "bogus-operator",
        "condition-not-object",
        "null-bad-value",
        "service-principal",
        "not-principal",
        "bad-effect",
        "empty-action",
        "action-and-notaction",
    ],
)
def test_unknown_policy_construct_fails_closed(mutation):
    stmt = dict(ENCLAVE_ONLY)
    stmt.update(mutation)
    decision = evaluate(policy(stmt), ctx())
    assert not decision.allowed
    assert "not understood" in decision.reason


def test_malformed_policy_document_denied():
    assert not evaluate({"Statement": "nope"}, ctx()).allowed
    assert not evaluate({}, ctx()).allowed


def test_resource_must_match_key_arn():
    stmt = dict(ENCLAVE_ONLY)
    stmt["Resource"] = "arn:aws:kms:us-east-1:123456789012:key/other"
    assert not evaluate(policy(stmt), ctx()).allowed
    stmt["Resource"] = "arn:aws:kms:us-east-1:123456789012:key/*"
    assert evaluate(policy(stmt), ctx()).allowed


def test_action_wildcard_and_case():
    stmt = dict(ENCLAVE_ONLY)
    stmt["Action"] = "KMS:decr*"
    assert evaluate(policy(stmt), ctx()).allowed
