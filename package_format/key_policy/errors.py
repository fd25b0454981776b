# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Errors of `package_format.key_policy`, grouped by who is at fault."""

from __future__ import annotations

from package_format.errors import FormatError, PackageFormatError


class KeyPolicyError(PackageFormatError):
    """Base of every key-policy error."""


class PolicyInputError(KeyPolicyError, FormatError):
    """A PCR value, principal, account, bundle name or policy document is invalid.

    `field` names the parameter at fault (e.g. `admin_principals`), never a CLI flag.
    """


class PolicyNotUnderstoodError(KeyPolicyError, FormatError):
    """The evaluator met a construct it does not implement; the request is denied (fails closed)."""
