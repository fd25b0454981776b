# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`--apply-policy` for publish and revoke: put the KMS key policy (specs/distribution.md §6.3).

publish: the policy that lets the published image (its PCRs) Decrypt the bundle's data key.
revoke: the same policy plus a Deny of Decrypt for the revoked version's encryption context,
so a copy of the old bundle no longer opens even in a matching enclave.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from owner_tools.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from package_format.index import VersionEntry


class PolicyUnavailableError(UsageError):
    """The key-policy builder is not part of this build yet."""


def apply_image_policy(bundle: Path, image: Path, pcrs: Path, *, endpoint_url: str | None) -> str:
    """Put the key policy admitting `image` on the bundle's KMS key; return the key id.

    Raises:
        PolicyUnavailableError: the policy builder is not available.
    """
    del bundle, image, pcrs, endpoint_url
    raise PolicyUnavailableError("--apply-policy: the key policy builder is not available yet")


def apply_revocation(entry: VersionEntry, *, endpoint_url: str | None) -> str:
    """Deny Decrypt for `entry`'s encryption context in its key's policy; return the key id.

    Raises:
        PolicyUnavailableError: the policy builder is not available.
    """
    del entry, endpoint_url
    raise PolicyUnavailableError("--apply-policy: the key policy builder is not available yet")
