# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Typed errors of the RPC codec (specs/rpc-protocol.md §5).

Frame and message errors drop the connection that caused them; unknown
operations and bad arguments are answered with an error response.
"""

from __future__ import annotations

from package_format.errors import FormatError, LimitExceededError


class RpcFormatError(FormatError):
    """A frame or message does not follow specs/rpc-protocol.md."""


class FrameTooLargeError(RpcFormatError, LimitExceededError):
    """A frame declares a header or body larger than the negotiated limits."""


class TruncatedFrameError(RpcFormatError):
    """The stream ended in the middle of a frame."""


class MalformedFrameError(RpcFormatError):
    """A frame's header is not a CBOR map of the allowed types."""


class NonCanonicalHeaderError(MalformedFrameError):
    """A frame's header is valid CBOR but not in deterministic encoding."""


class MessageSchemaError(RpcFormatError):
    """A header decodes but is not a valid message (missing, extra or mistyped fields)."""


class UnknownOpError(RpcFormatError):
    """A well-formed request names an operation this version does not define.

    Unlike the frame errors, this one is answered with an error response and
    the connection stays open (specs/rpc-protocol.md §5.1).
    """


class BadArgumentsError(RpcFormatError):
    """A well-formed request for a known operation has missing or mistyped arguments.

    Answered with an error response; the connection stays open.
    """
