# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The key service pack and verify talk to, and the errors its implementations raise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from owner_tools.errors import ExternalError, InputError, UsageError


class KeyService(Protocol):
    """Generates and unwraps 256-bit data keys bound to an encryption context."""

    def generate_data_key(self, key_id: str, context: Mapping[str, str]) -> tuple[bytes, bytes]:
        """Return (plaintext 32-byte data key, wrapped ciphertext blob).

        Raises:
            KmsError: Any failure, as one of its subclasses.
        """
        ...

    def decrypt(self, ciphertext_blob: bytes, key_id: str, context: Mapping[str, str]) -> bytes:
        """Return the 32-byte data key wrapped in `ciphertext_blob` under `key_id`/`context`.

        Raises:
            KmsError: Any failure, as one of its subclasses.
        """
        ...


class KmsError(ExternalError):
    """The key service failed in a way not covered by a subclass."""


class KmsUnreachableError(KmsError):
    """The key service's endpoint could not be reached."""


class KmsCredentialsError(KmsError):
    """No credentials were found in the standard credential chain."""


class KmsAccessDeniedError(KmsError):
    """The key service refused the caller (policy, grant, or key state)."""


class KmsConfigError(KmsError, UsageError):
    """The key service is not configured (no region, bad endpoint URL)."""


class KmsKeyNotFoundError(KmsError, InputError):
    """The key id does not name a key the service knows."""


class KmsInvalidCiphertextError(KmsError, InputError):
    """The wrapped key or encryption context does not decrypt under the key."""
