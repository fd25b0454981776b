# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""KMS key policies for enclave images: one contract for the writer and the evaluator.

specs/key-policy.md (what the owner writes and what `check_policy` flags) and
specs/local-kms.md §5 (how a request is decided); vectors: tests/vectors/key-policy/.
Modules: `conditions` (condition keys and action sets, shared by both sides), `model`
(`build_policy`, revocations), `check` (unsafe shapes), `evaluation` (the decision).
Pure: no KMS, no files, no clock.
"""

from __future__ import annotations

from package_format.key_policy.check import Finding, check_policy
from package_format.key_policy.conditions import (
    ATTESTATION_PREFIX,
    BUNDLE_CONTEXT,
    CONTEXT_PREFIX,
    IMAGE_SHA384,
    KIND_CONTEXT,
    PCR8_KEY,
    VERSION_CONTEXT,
    attestation_condition_keys,
    context_condition_keys,
    principal_condition_keys,
)
from package_format.key_policy.errors import (
    KeyPolicyError,
    PolicyInputError,
    PolicyNotUnderstoodError,
)
from package_format.key_policy.evaluation import Decision, RequestContext, evaluate
from package_format.key_policy.model import (
    REVOCATION_SID_PREFIX,
    PolicyRequest,
    add_revocation,
    build_key_policy,
    build_policy,
    check_pcr,
    revocation_sid,
)

__all__ = [
    "ATTESTATION_PREFIX",
    "BUNDLE_CONTEXT",
    "CONTEXT_PREFIX",
    "IMAGE_SHA384",
    "KIND_CONTEXT",
    "PCR8_KEY",
    "REVOCATION_SID_PREFIX",
    "VERSION_CONTEXT",
    "Decision",
    "Finding",
    "KeyPolicyError",
    "PolicyInputError",
    "PolicyNotUnderstoodError",
    "PolicyRequest",
    "RequestContext",
    "add_revocation",
    "attestation_condition_keys",
    "build_key_policy",
    "build_policy",
    "check_pcr",
    "check_policy",
    "context_condition_keys",
    "evaluate",
    "principal_condition_keys",
    "revocation_sid",
]
