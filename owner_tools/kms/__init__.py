# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Key wrapping behind an interface (`KeyService`), with an AWS KMS implementation.

The interface and its errors are here; the implementation, `owner_tools.kms.aws.AwsKms`,
is imported where it is used (it loads boto3).
"""

from owner_tools.kms.interface import (
    KeyService,
    KmsAccessDeniedError,
    KmsConfigError,
    KmsCredentialsError,
    KmsError,
    KmsInvalidCiphertextError,
    KmsKeyNotFoundError,
    KmsUnreachableError,
)

__all__ = [
    "KeyService",
    "KmsAccessDeniedError",
    "KmsConfigError",
    "KmsCredentialsError",
    "KmsError",
    "KmsInvalidCiphertextError",
    "KmsKeyNotFoundError",
    "KmsUnreachableError",
]
