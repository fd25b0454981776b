# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""owner-tools policy and policy check (issue 3 must-show 4)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from owner_tools._cli import main
from package_format.key_policy import (
    PolicyInputError,
    RequestContext,
    add_revocation,
    attestation_condition_keys,
    build_key_policy,
    check_policy,
    evaluate,
)

ACCOUNT = "111122223333"
ENCLAVE = f"arn:aws:iam::{ACCOUNT}:role/enclave-parent"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/key-admin"
OWNER = f"arn:aws:iam::{ACCOUNT}:role/owner-ci"
PCR0 = "61c4ce7b149f887c3cb4be14bd773300449df79ff05b1d1f4162cc9e76d03856c4631c5260ba55efcbaad8f832d14150"
PCR8 = "593210dba4b3e11d73fca047aa4f230ef611a4b104e9d9a7e19a1e08ef56a5fe8ffafa4b341ad3058d02721cc9e3af63"


def _policy(**kw):
    args = {
        "account_id": ACCOUNT,
        "pcr0": PCR0,
        "pcr8": PCR8,
        "bundle_name": "demo",
        "bundle_version": "1.0.0",
        "enclave_principal": ENCLAVE,
        "admin_principals": [ADMIN],
        "owner_principal": OWNER,
    }
    args.update(kw)
    return build_key_policy(**args)


def _codes(policy):
    return sorted({f.code for f in check_policy(policy)})


def _statement(policy, sid):
    (stmt,) = [s for s in policy["Statement"] if s["Sid"] == sid]
    return stmt


def test_generated_policy_shape():
    policy = _policy()
    enclave = _statement(policy, "AttestedEnclaveOnly")
    assert enclave["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert enclave["Condition"] == {
        "StringEqualsIgnoreCase": {
            "kms:RecipientAttestation:ImageSha384": PCR0,
            "kms:RecipientAttestation:PCR8": PCR8,
        },
        "StringEquals": {
            "kms:EncryptionContext:bundle": "demo",
            "kms:EncryptionContext:version": "1.0.0",
        },
    }
    admin = _statement(policy, "KeyAdministrationWithoutKeyRelease")
    assert "kms:Decrypt" in admin["NotAction"]
    assert "Action" not in admin
    owner = _statement(policy, "OwnerPackNoDecrypt")
    assert owner["Action"] == "kms:GenerateDataKey"
    assert check_policy(policy) == []


def test_unsigned_image_policy_has_no_pcr8():
    policy = _policy(pcr8=None, owner_principal=None, bundle_version=None)
    cond = _statement(policy, "AttestedEnclaveOnly")["Condition"]
    assert "kms:RecipientAttestation:PCR8" not in cond["StringEqualsIgnoreCase"]
    assert cond["StringEquals"] == {"kms:EncryptionContext:bundle": "demo"}
    assert len(policy["Statement"]) == 2
    assert check_policy(policy) == []


def test_all_zero_pcr0_refused_at_generation():
    with pytest.raises(PolicyInputError, match="all-zero"):
        _policy(pcr0="0" * 96)


def test_malformed_pcr_refused_at_generation():
    with pytest.raises(PolicyInputError, match="96 hex"):
        _policy(pcr0="0x" + PCR0[2:])


def test_principal_in_other_account_refused():
    with pytest.raises(PolicyInputError, match="not in account"):
        _policy(enclave_principal="arn:aws:iam::999999999999:role/x")


def test_flag_decrypt_without_attestation():
    policy = _policy()
    stmt = _statement(policy, "AttestedEnclaveOnly")
    del stmt["Condition"]["StringEqualsIgnoreCase"]
    assert "decrypt-without-attestation" in _codes(policy)


def test_flag_account_root_kms_star():
    policy = _policy()
    policy["Statement"].append(
        {
            "Sid": "EnableIAM",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    )
    findings = [f for f in check_policy(policy) if f.statement == "EnableIAM"]
    assert {f.code for f in findings} >= {"decrypt-without-attestation", "wildcard-decrypt"}
    assert any("account root" in f.message for f in findings)


def test_flag_broad_kms_star_for_decrypting_principal_even_with_attestation():
    policy = _policy()
    _statement(policy, "AttestedEnclaveOnly")["Action"] = "kms:*"
    assert _codes(policy) == ["wildcard-decrypt"]


def test_flag_decrypt_through_wildcard_pattern():
    policy = _policy()
    policy["Statement"].append(
        {
            "Sid": "Sneaky",
            "Effect": "Allow",
            "Principal": {"AWS": ENCLAVE},
            "Action": "kms:De*",
            "Resource": "*",
        }
    )
    assert {f.code for f in check_policy(policy) if f.statement == "Sneaky"} >= {
        "decrypt-without-attestation",
        "wildcard-decrypt",
    }


def test_flag_admin_notaction_that_does_not_exclude_decrypt():
    policy = _policy()
    _statement(policy, "KeyAdministrationWithoutKeyRelease")["NotAction"] = [
        "kms:ScheduleKeyDeletion"
    ]
    codes = {
        f.code for f in check_policy(policy) if f.statement == "KeyAdministrationWithoutKeyRelease"
    }
    assert codes >= {"decrypt-without-attestation", "wildcard-decrypt"}


def test_flag_all_zero_pcr_debug_enclave():
    policy = _policy()
    _statement(policy, "AttestedEnclaveOnly")["Condition"]["StringEqualsIgnoreCase"][
        "kms:RecipientAttestation:ImageSha384"
    ] = "0" * 96
    assert _codes(policy) == ["all-zero-pcr"]


def test_flag_image_sha384_wrong_length():
    policy = _policy()
    _statement(policy, "AttestedEnclaveOnly")["Condition"]["StringEqualsIgnoreCase"][
        "kms:RecipientAttestation:ImageSha384"
    ] = PCR0[:64]
    assert _codes(policy) == ["malformed-pcr"]


def test_flag_image_sha384_non_hex():
    policy = _policy()
    _statement(policy, "AttestedEnclaveOnly")["Condition"]["StringEqualsIgnoreCase"][
        "kms:RecipientAttestation:ImageSha384"
    ] = "z" * 96
    assert _codes(policy) == ["malformed-pcr"]


def test_flag_allow_principal_star():
    policy = _policy()
    _statement(policy, "AttestedEnclaveOnly")["Principal"] = "*"
    assert _codes(policy) == ["allow-any-principal"]


def test_flag_attestation_if_exists():
    policy = _policy()
    cond = _statement(policy, "AttestedEnclaveOnly")["Condition"]
    cond["StringEqualsIgnoreCaseIfExists"] = cond.pop("StringEqualsIgnoreCase")
    assert _codes(policy) == ["attestation-if-exists", "decrypt-without-attestation"]


def test_flag_uppercase_pcr_with_case_sensitive_operator():
    policy = _policy()
    cond = _statement(policy, "AttestedEnclaveOnly")["Condition"]
    block = cond.pop("StringEqualsIgnoreCase")
    block["kms:RecipientAttestation:ImageSha384"] = PCR0.upper()
    cond["StringEquals"].update(block)
    assert _codes(policy) == ["case-sensitive-pcr"]


def test_flag_decrypt_without_encryption_context():
    policy = _policy()
    del _statement(policy, "AttestedEnclaveOnly")["Condition"]["StringEquals"]
    assert _codes(policy) == ["no-encryption-context"]


def test_flag_not_principal_allow():
    policy = _policy()
    stmt = _statement(policy, "OwnerPackNoDecrypt")
    stmt["NotPrincipal"] = stmt.pop("Principal")
    assert "not-principal-allow" in _codes(policy)


def test_not_a_policy():
    assert _codes({"Statement": "nope"}) == ["not-a-policy"]
    assert _codes([1, 2]) == ["not-a-policy"]


def test_add_revocation_denies_decrypt_for_that_version_idempotent():
    policy = _policy(bundle_version=None)
    before = copy.deepcopy(policy)
    revoked = add_revocation(policy, "demo", "1.0.0")
    assert policy == before
    deny = revoked["Statement"][-1]
    assert deny["Effect"] == "Deny"
    assert "kms:Decrypt" in deny["Action"]
    assert deny["Condition"]["StringEquals"] == {
        "kms:EncryptionContext:bundle": "demo",
        "kms:EncryptionContext:version": "1.0.0",
    }
    assert deny["Sid"].isalnum()
    assert add_revocation(revoked, "demo", "1.0.0") == revoked
    assert (
        len(add_revocation(revoked, "demo", "1.0.1")["Statement"]) == len(revoked["Statement"]) + 1
    )
    assert check_policy(revoked) == []


def _cli_generate(tmp_path, *extra):
    out = tmp_path / "policy.json"
    rc = main(
        [
            "policy",
            *extra,
            "--bundle-name",
            "demo",
            "--account",
            ACCOUNT,
            "--enclave-principal",
            ENCLAVE,
            "--admin-principal",
            ADMIN,
            "-o",
            str(out),
        ]
    )
    return rc, out


def test_cli_policy_from_signed_eif_passes_check(tmp_path, aws_vector, capsys):
    rc, out = _cli_generate(
        tmp_path, "--eif", str(aws_vector("eif/eif/tiny-x86_64-signed-after.eif"))
    )
    assert rc == 0
    policy = json.loads(out.read_text())
    cond = _statement(policy, "AttestedEnclaveOnly")["Condition"]["StringEqualsIgnoreCase"]
    assert cond["kms:RecipientAttestation:PCR8"] == PCR8
    capsys.readouterr()
    assert main(["policy", "check", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{out}: ok, no findings\n"
    assert captured.err == ""


def test_cli_policy_from_pcrs_json(tmp_path, aws_vector, capsys):
    pcrs = tmp_path / "x.pcrs.json"
    pcrs.write_text(json.dumps({"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": PCR0}}))
    rc, out = _cli_generate(tmp_path, "--pcrs", str(pcrs))
    assert rc == 0
    assert "PCR8" not in out.read_text()


def test_cli_policy_check_flags_each_finding_and_exits_1(tmp_path, capsys):
    policy = _policy()
    _statement(policy, "AttestedEnclaveOnly")["Action"] = "kms:*"
    _statement(policy, "AttestedEnclaveOnly")["Condition"]["StringEqualsIgnoreCase"][
        "kms:RecipientAttestation:ImageSha384"
    ] = "0" * 96
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(policy))
    assert main(["policy", "check", str(path)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2
    assert any("[all-zero-pcr]" in line and "debug-mode" in line for line in lines)
    assert any("[wildcard-decrypt]" in line for line in lines)
    assert captured.err.strip().splitlines() == [f"owner-tools: error: {path}: 2 findings"]


def test_cli_policy_check_json_lists_findings_and_exits_1(tmp_path, capsys):
    policy = _policy()
    _statement(policy, "AttestedEnclaveOnly")["Action"] = "kms:*"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(policy))
    assert main(["policy", "check", str(path), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == str(path)
    assert [f["code"] for f in result["findings"]] == ["wildcard-decrypt"]
    assert result["findings"][0]["statement"] == "AttestedEnclaveOnly"
    path.write_text(json.dumps(_policy()))
    assert main(["policy", "check", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_cli_policy_refuses_corrupt_eif(tmp_path, aws_vector, capsys):
    data = bytearray(aws_vector("eif/eif/tiny-x86_64-unsigned.eif").read_bytes())
    data[1000] ^= 4
    bad = tmp_path / "bad.eif"
    bad.write_bytes(bytes(data))
    rc, out = _cli_generate(tmp_path, "--eif", str(bad))
    assert rc == 1
    assert "crc32 mismatch" in capsys.readouterr().err
    assert not out.exists()


def test_cli_policy_missing_flags(tmp_path, capsys):
    rc = main(["policy", "--eif", "x.eif"])
    assert rc != 0
    assert "missing --bundle-name, --account, --enclave-principal" in capsys.readouterr().err


def test_cli_policy_check_not_json_subprocess(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{nope")
    proc = subprocess.run(
        [sys.executable, "-m", "owner_tools", "policy", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"owner-tools: error: {path}: not json"]


def test_several_bundle_names_share_one_key_and_only_they_decrypt():
    policy = _policy(bundle_name=["alpha", "beta", "alpha"], bundle_version=None)
    cond = _statement(policy, "AttestedEnclaveOnly")["Condition"]["StringEquals"]
    assert cond == {"kms:EncryptionContext:bundle": ["alpha", "beta"]}
    owner = _statement(policy, "OwnerPackNoDecrypt")["Condition"]["StringEquals"]
    assert owner == {"kms:EncryptionContext:bundle": ["alpha", "beta"]}
    assert policy["Id"] == "nitro-bundles:alpha,beta"
    assert check_policy(policy) == []
    keys = attestation_condition_keys({0: bytes.fromhex(PCR0), 8: bytes.fromhex(PCR8)})

    def decrypts(bundle: str) -> bool:
        request = {**keys, "kms:EncryptionContext:bundle": bundle}
        return evaluate(policy, RequestContext("kms:Decrypt", ENCLAVE, "*", request)).allowed

    assert (decrypts("alpha"), decrypts("beta"), decrypts("gamma")) == (True, True, False)


def test_one_bundle_name_gives_the_single_bundle_policy():
    assert _policy(bundle_name=["demo"]) == _policy()


def test_bundle_version_with_several_names_refused():
    with pytest.raises(PolicyInputError):
        _policy(bundle_name=["alpha", "beta"])


def test_cli_policy_takes_several_bundle_names(tmp_path):
    rc, out = _cli_generate(tmp_path, "--pcrs", str(_pcrs_file(tmp_path)), "--bundle-name", "b2")
    assert rc == 0
    cond = _statement(json.loads(out.read_text()), "AttestedEnclaveOnly")["Condition"]
    assert cond["StringEquals"] == {"kms:EncryptionContext:bundle": ["b2", "demo"]}


def _pcrs_file(tmp_path):
    pcrs = tmp_path / "x.pcrs.json"
    pcrs.write_text(json.dumps({"PCR0": PCR0}))
    return pcrs
