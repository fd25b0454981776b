# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The run environment a manifest declares (specs/bundle-format.md §5, §5.8).

The variables the user may set with the owner's defaults (`EnvPolicy`), and the app
environment the image must hold (`Environment`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from package_format.bundle._fields import fields, get_list, get_text
from package_format.bundle.errors import BundleLimitError, HeaderFieldError

SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_ENV_NAMES = 64
MAX_ENV_VALUE_BYTES = 4096
#: Names no manifest may allow: the runner sets them, or they change what code the
#: interpreter or the dynamic loader runs (a user's `LD_PRELOAD=/dataset/x.so` would run the
#: user's code inside the owner's process).
ENV_RESERVED = frozenset({"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "GCONV_PATH", "IFS"})
ENV_RESERVED_PREFIXES = ("LD_", "PYTHON", "LC_")


def check_env_name(name: str, where: str) -> str:
    """Check one environment variable name the manifest allows (§5).

    Raises:
        HeaderFieldError: Not a portable name, or a reserved one.
    """
    if not ENV_NAME_RE.fullmatch(name):
        raise HeaderFieldError(f"{where}: {name!r} is not an environment variable name")
    if name in ENV_RESERVED or name.startswith(ENV_RESERVED_PREFIXES):
        raise HeaderFieldError(f"{where}: {name!r} is reserved and cannot be allowed")
    return name


def check_env_value(value: str, where: str) -> str:
    """Check one environment value (a default, or the user's).

    Raises:
        HeaderFieldError: Longer than 4096 bytes or holding a NUL.
    """
    if "\x00" in value or len(value.encode("utf-8", "surrogatepass")) > MAX_ENV_VALUE_BYTES:
        raise HeaderFieldError(f"{where}: a value must be text of at most 4096 bytes, no NUL")
    return value


@dataclass(frozen=True)
class EnvPolicy:
    """Environment variables the user may set for a run, and the owner's defaults (§5)."""

    allow: tuple[str, ...] = ()
    defaults: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", tuple(sorted(set(self.allow))))
        object.__setattr__(self, "defaults", tuple(sorted(dict(self.defaults).items())))
        if len(self.allow) > MAX_ENV_NAMES:
            raise BundleLimitError(f"manifest: env allows more than {MAX_ENV_NAMES} names")
        for name in self.allow:
            check_env_name(name, "manifest: env")
        for name, value in self.defaults:
            if name not in self.allow:
                raise HeaderFieldError(f"manifest: env default {name!r} is not an allowed name")
            check_env_value(value, f"manifest: env default {name!r}")

    def to_cbor_obj(self) -> dict[str, Any]:
        """The CBOR map `{allow: [text], defaults: {text: text}}`."""
        return {"allow": list(self.allow), "defaults": dict(self.defaults)}

    @classmethod
    def from_cbor_obj(cls, obj: object) -> EnvPolicy:
        """Parse the manifest's `env` map.

        Raises:
            HeaderFieldError: A field is missing, unknown or invalid.
        """
        where = "manifest: env"
        m = fields(obj, {"allow", "defaults"}, set(), where)
        allow = get_list(m, "allow", where, MAX_ENV_NAMES)
        defaults = m["defaults"]
        if not all(isinstance(n, str) for n in allow) or not isinstance(defaults, dict):
            raise HeaderFieldError(f"{where}: allow must list names, defaults map them to text")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in defaults.items()):
            raise HeaderFieldError(f"{where}: defaults must map names to text")
        return cls(tuple(allow), tuple(defaults.items()))


@dataclass(frozen=True)
class Environment:
    """The app environment the bundle needs in its image (§5.8).

    Attributes:
        sha256: SHA-256 (64 lowercase hex) of the app's hashed `requirements.txt`; the image
            must hold the environment built from exactly that file.
    """

    sha256: str

    def __post_init__(self) -> None:
        if not SHA256_HEX_RE.fullmatch(self.sha256):
            raise HeaderFieldError("manifest: environment sha256 must be 64 lowercase hex")

    def to_cbor_obj(self) -> dict[str, Any]:
        """The CBOR map `{sha256: text}`."""
        return {"sha256": self.sha256}

    @classmethod
    def from_cbor_obj(cls, obj: object) -> Environment:
        """Parse the manifest's `environment` map.

        Raises:
            HeaderFieldError: A field is missing, unknown or invalid.
        """
        where = "manifest: environment"
        m = fields(obj, {"sha256"}, set(), where)
        return cls(get_text(m, "sha256", where, 64))
