# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The RPC protocol between the user's host and the enclave (specs/rpc-protocol.md).

Pure: frames are encoded to buffers and decoded from bytes the caller receives;
no sockets, no threads, no clock.
"""

from package_format.rpc.codes import ErrorCode, errno_code
from package_format.rpc.errors import (
    BadArgumentsError,
    FrameTooLargeError,
    MalformedFrameError,
    MessageSchemaError,
    NonCanonicalHeaderError,
    RpcFormatError,
    TruncatedFrameError,
    UnknownOpError,
)
from package_format.rpc.frames import (
    Frame,
    FrameDecoder,
    FrameLimits,
    decode_header,
    encode_frame,
    frame_bytes,
)
from package_format.rpc.messages import (
    EVENTS,
    OPS,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Event,
    Hello,
    Message,
    Request,
    Response,
    Welcome,
    choose_version,
    parse_message,
    validate_args,
)

__all__ = [
    "EVENTS",
    "OPS",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "BadArgumentsError",
    "ErrorCode",
    "Event",
    "Frame",
    "FrameDecoder",
    "FrameLimits",
    "FrameTooLargeError",
    "Hello",
    "MalformedFrameError",
    "Message",
    "MessageSchemaError",
    "NonCanonicalHeaderError",
    "Request",
    "Response",
    "RpcFormatError",
    "TruncatedFrameError",
    "UnknownOpError",
    "Welcome",
    "choose_version",
    "decode_header",
    "encode_frame",
    "errno_code",
    "frame_bytes",
    "parse_message",
    "validate_args",
]
