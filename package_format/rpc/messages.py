# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Message schemas: what a header may hold, per message type and per operation.

specs/rpc-protocol.md §4 (messages) and §7 (operations).
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple, TypeAlias

from package_format.limits import short_repr
from package_format.rpc.codes import ErrorCode
from package_format.rpc.errors import BadArgumentsError, MessageSchemaError, UnknownOpError
from package_format.rpc.frames import Frame, FrameLimits

PROTOCOL_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)
_MAX_VERSIONS = 16
_MAX_ID = 2**63 - 1
_MAX_LIST = 1024
_MAX_NONCE = 1024  # the NSM's limit on an attestation nonce
#: Files of one `puts` request (specs/rpc-protocol.md §7.7).
MAX_PUTS = 1024
_EMPTY = memoryview(b"")
_NO_ARGS: Final[dict[str, Any]] = {}

# specs/rpc-protocol.md §7: argument kinds and defaults of every operation.
# A field maps to (kind, default); `_REQUIRED` marks fields without a default.
_REQUIRED: Final = object()
_Spec: TypeAlias = dict[str, tuple[str, object]]
OPS: Final[dict[str, _Spec]] = {
    "ping": {},
    "statfs": {},
    "stat": {"path": ("text", _REQUIRED)},
    "listdir": {"path": ("text", _REQUIRED), "after": ("text", "")},
    "mkdir": {"path": ("text", _REQUIRED), "mode": ("uint", 0o755)},
    "rmdir": {"path": ("text", _REQUIRED)},
    "unlink": {"path": ("text", _REQUIRED)},
    "rename": {"src": ("text", _REQUIRED), "dst": ("text", _REQUIRED)},
    "create": {
        "path": ("text", _REQUIRED),
        "mode": ("uint", 0o644),
        "truncate": ("bool", True),
        "exclusive": ("bool", False),
    },
    "truncate": {"path": ("text", _REQUIRED), "size": ("uint", _REQUIRED)},
    "chmod": {"path": ("text", _REQUIRED), "mode": ("uint", _REQUIRED)},
    "utimens": {
        "path": ("text", _REQUIRED),
        "atime_ns": ("uint", _REQUIRED),
        "mtime_ns": ("uint", _REQUIRED),
    },
    "read": {
        "path": ("text", _REQUIRED),
        "offset": ("uint", _REQUIRED),
        "length": ("uint", _REQUIRED),
    },
    "write": {"path": ("text", _REQUIRED), "offset": ("uint", _REQUIRED)},
    "put": {"path": ("text", _REQUIRED), "mode": ("uint", 0o644)},
    "puts": {"files": ("files", _REQUIRED)},
    "fsync": {"path": ("text", _REQUIRED)},
    "run": {
        "bundle": ("text", _REQUIRED),
        "entrypoint": ("text", _REQUIRED),
        "args": ("texts", ()),
        "timeout_s": ("uint", 0),
        "env": ("texts", ()),
        "data": ("texts", ()),
        "nonce": ("nonce", None),  # specs/receipts.md §5.2: 1-1024 bytes, sent only when set
    },
    "cancel": {},
    "credentials": {
        "access_key_id": ("text", _REQUIRED),
        "secret_access_key": ("text", _REQUIRED),
        "session_token": ("text", ""),
        "region": ("text", ""),
    },
    "attest": {"nonce": ("text", ""), "user_data": ("text", "")},
}
EVENTS: Final = ("stdout", "stderr")


# Messages are NamedTuples (frames.py says why); a body never takes part in equality, as
# two messages are the same message whatever bytes follow them.
class Hello(NamedTuple):
    """Client's first frame: the protocol versions it speaks (§4.1)."""

    versions: tuple[int, ...]

    @property
    def body(self) -> memoryview:
        """A hello has no body."""
        return _EMPTY

    def header(self) -> dict[str, Any]:
        """Return the header map of this message."""
        return {"id": 0, "args": {"versions": list(self.versions)}, "type": "hello"}


class Welcome(NamedTuple):
    """Server's answer to a hello it accepts: the chosen version and its limits (§4.1)."""

    version: int
    limits: FrameLimits

    @property
    def body(self) -> memoryview:
        """A welcome has no body."""
        return _EMPTY

    def header(self) -> dict[str, Any]:
        """Return the header map of this message."""
        return {
            "id": 0,
            "args": {
                "version": self.version,
                "max_chunk": self.limits.max_chunk,
                "max_frame": self.limits.max_frame,
                "max_header": self.limits.max_header,
            },
            "type": "welcome",
        }


class Request(NamedTuple):
    """A client request; `args` are checked per operation by `validate_args` (§4.2)."""

    id: int
    op: str
    args: dict[str, Any]
    body: memoryview = _EMPTY

    def __eq__(self, other: object) -> bool:
        """Equal when everything but the body is."""
        return type(other) is type(self) and self[:-1] == other[:-1]

    def __ne__(self, other: object) -> bool:
        """Not `__eq__`."""
        return not self == other

    def __hash__(self) -> int:
        """Hash of everything but the body."""
        return hash(self[:-1])

    def header(self) -> dict[str, Any]:
        """Return the header map of this message."""
        return {"id": self.id, "op": self.op, "args": self.args, "type": "req"}


class Response(NamedTuple):
    """The one final answer to a request: status 0 and results, or an error (§4.3)."""

    id: int
    status: int
    args: dict[str, Any]
    body: memoryview = _EMPTY

    def __eq__(self, other: object) -> bool:
        """Equal when everything but the body is."""
        return type(other) is type(self) and self[:-1] == other[:-1]

    def __ne__(self, other: object) -> bool:
        """Not `__eq__`."""
        return not self == other

    def __hash__(self) -> int:
        """Hash of everything but the body."""
        return hash(self[:-1])

    @classmethod
    def error(cls, request_id: int, code: ErrorCode, message: str) -> Response:
        """Build an error response carrying the code's number, name and a message."""
        return cls(request_id, int(code), {"name": code.name, "message": message})

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.status == 0

    def header(self) -> dict[str, Any]:
        """Return the header map of this message."""
        return {"id": self.id, "args": self.args, "type": "res", "status": self.status}


class Event(NamedTuple):
    """A streamed piece of a running request's output (§4.4): stdout or stderr bytes."""

    id: int
    name: str
    args: dict[str, Any] = _NO_ARGS  # never mutated: every sender passes its own dict
    body: memoryview = _EMPTY

    def __eq__(self, other: object) -> bool:
        """Equal when everything but the body is."""
        return type(other) is type(self) and self[:-1] == other[:-1]

    def __ne__(self, other: object) -> bool:
        """Not `__eq__`."""
        return not self == other

    def __hash__(self) -> int:
        """Hash of everything but the body."""
        return hash(self[:-1])

    def header(self) -> dict[str, Any]:
        """Return the header map of this message."""
        return {"id": self.id, "op": self.name, "args": self.args, "type": "evt"}


Message: TypeAlias = Hello | Welcome | Request | Response | Event

_KEYS: Final = {
    "hello": {"type", "id", "args"},
    "welcome": {"type", "id", "args"},
    "req": {"type", "id", "op", "args"},
    "res": {"type", "id", "status", "args"},
    "evt": {"type", "id", "op", "args"},
}


def parse_message(frame: Frame) -> Message:
    """Turn a decoded frame into a message, checking the header's shape (§4).

    Args:
        frame: a frame from `FrameDecoder`.

    Returns:
        The message. Request arguments are not checked here: see `validate_args`.

    Raises:
        MessageSchemaError: unknown type, missing, extra or mistyped fields.
    """
    header = frame.header
    kind = header.get("type")
    if not isinstance(kind, str) or kind not in _KEYS:
        raise MessageSchemaError(f"unknown message type {short_repr(kind)}")
    if set(header) != _KEYS[kind]:
        raise MessageSchemaError(f"{kind} header has fields {short_repr(sorted(header), 200)}")
    msg_id = _uint(header["id"], "id", _MAX_ID)
    args = header["args"]
    if not isinstance(args, dict):
        raise MessageSchemaError(f"{kind} args is not a map")
    if kind in ("hello", "welcome"):
        if msg_id != 0 or frame.body.nbytes:
            raise MessageSchemaError(f"{kind} must have id 0 and no body")
        return _parse_hello(args) if kind == "hello" else _parse_welcome(args)
    if kind == "res":
        return Response(msg_id, _uint(header["status"], "status", 65535), args, frame.body)
    op = header["op"]
    if not isinstance(op, str):
        raise MessageSchemaError(f"{kind} op is not text")
    if kind == "req":
        return Request(msg_id, op, args, frame.body)
    return Event(msg_id, op, args, frame.body)


def _parse_hello(args: dict[str, Any]) -> Hello:
    versions = args.get("versions")
    if set(args) != {"versions"} or not isinstance(versions, list):
        raise MessageSchemaError("hello args must be {versions: [uint]}")
    if not 0 < len(versions) <= _MAX_VERSIONS:
        raise MessageSchemaError("hello lists no versions or too many")
    return Hello(tuple(_uint(v, "version", 65535) for v in versions))


def _parse_welcome(args: dict[str, Any]) -> Welcome:
    names = {"version", "max_header", "max_frame", "max_chunk"}
    if set(args) != names:
        raise MessageSchemaError("welcome args must be {version, max_header, max_frame, max_chunk}")
    values = {name: _uint(args[name], name, 2**32 - 1) for name in names}
    version = values.pop("version")
    return Welcome(version, FrameLimits(**values))


def choose_version(offered: tuple[int, ...]) -> int | None:
    """Pick the highest version both sides speak, or None (§4.1)."""
    common = set(offered) & set(SUPPORTED_VERSIONS)
    return max(common) if common else None


def validate_args(op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Check a request's arguments against its operation and fill in defaults (§7).

    Args:
        op: the operation name.
        args: the request's args map.

    Returns:
        A new map with every field of the operation.

    Raises:
        UnknownOpError: `op` is not an operation of this version.
        BadArgumentsError: a field is missing, unknown or of the wrong type.
    """
    spec = OPS.get(op)
    if spec is None:
        raise UnknownOpError(f"unknown operation {op!r}")
    extra = set(args) - set(spec)
    if extra:
        raise BadArgumentsError(f"{op}: unknown argument {min(extra)!r}")
    result: dict[str, Any] = {}
    for name, (kind, default) in spec.items():
        if name not in args:
            if default is _REQUIRED:
                raise BadArgumentsError(f"{op}: missing argument {name!r}")
            result[name] = list(default) if isinstance(default, tuple) else default
            continue
        value = args[name]
        if not _is_kind(value, kind):
            raise BadArgumentsError(f"{op}: argument {name!r} is not {kind}")
        result[name] = value
    return result


def _is_kind(value: object, kind: str) -> bool:
    if kind == "text":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "uint":
        return _is_uint(value)
    if kind == "nonce":
        return isinstance(value, bytes) and 1 <= len(value) <= _MAX_NONCE
    if kind == "files":  # `puts` (§7.7): 1 to MAX_PUTS entries [path, mode, size]
        return (
            isinstance(value, list)
            and 0 < len(value) <= MAX_PUTS
            and all(_is_put_entry(entry) for entry in value)
        )
    # "texts": a bounded list of text
    return (
        isinstance(value, list)
        and len(value) <= _MAX_LIST
        and all(isinstance(item, str) for item in value)
    )


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**63 - 1


def _is_put_entry(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and isinstance(entry[0], str)
        and _is_uint(entry[1])
        and _is_uint(entry[2])
    )


def _uint(value: object, name: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise MessageSchemaError(f"{name} is not an integer in 0..{maximum}")
    return value
