# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Data bundles' access rules and output terms (specs/bundle-format.md §5.7).

Two sides sign what they accept: an app manifest lists the data it reads (`DataRule`, its
`[[data]]`), a data manifest lists the apps that may read it (`AppGrant`, its `[[apps]]`) and
may set `DataTerms` on what a run reading it releases. `VersionRange` is the shared range
syntax. Every class validates itself at construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from package_format.bundle._fields import fields, get_bool, get_int, get_list, get_text
from package_format.bundle.errors import BundleLimitError, HeaderFieldError
from package_format.bundle.limits import PUBLIC_KEY_SIZE
from package_format.bundle.paths import check_path

_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")
_COMPARATOR = re.compile(r"(>=|<=|>|<|=)?\s*(\S+)")
_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "=": lambda a, b: a == b,
}
MAX_RANGE_BYTES = 255
MAX_RULES = 32
MAX_SIGNERS = 16
MAX_OUTPUT_PATHS = 64
#: Every data bundle appears under this folder of the run's view (§5.7).
DATA_ROOT = "/data/"

VersionKey = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def semver_key(version: str) -> VersionKey:
    """Order semantic versions by SemVer 2.0.0 precedence (build metadata ignored).

    Raises:
        HeaderFieldError: `version` is not a semantic version.
    """
    match = _SEMVER.fullmatch(version)
    if match is None:
        raise HeaderFieldError(f"version {version!r} is not a semantic version")
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    ids = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, ids)


@dataclass(frozen=True)
class VersionRange:
    """`*`, or comparators joined by `,` (all must hold): `>=1.2.0, <2.0.0`, `=1.0.0`."""

    text: str

    def __post_init__(self) -> None:
        if not self.text or len(self.text.encode()) > MAX_RANGE_BYTES:
            raise HeaderFieldError(f"version range {self.text!r}: empty or over 255 bytes")
        self.comparators()

    def comparators(self) -> list[tuple[str, VersionKey]]:
        """The range as (operator, version key) pairs; `*` is no pair.

        Raises:
            HeaderFieldError: Not the range syntax.
        """
        if self.text.strip() == "*":
            return []
        pairs = []
        for part in self.text.split(","):
            match = _COMPARATOR.fullmatch(part.strip())
            if match is None:
                raise HeaderFieldError(f"version range {self.text!r}: bad comparator {part!r}")
            pairs.append((match.group(1) or "=", semver_key(match.group(2))))
        return pairs

    def admits(self, version: str) -> bool:
        """Whether `version` is in the range (a non-semver version never is)."""
        try:
            key = semver_key(version)
        except HeaderFieldError:
            return False
        return all(_OPS[op](key, bound) for op, bound in self.comparators())


def _signers(m: dict[str, Any], where: str) -> tuple[bytes, ...]:
    items = get_list(m, "signers", where, MAX_SIGNERS)
    if not items or not all(isinstance(k, bytes) and len(k) == PUBLIC_KEY_SIZE for k in items):
        raise HeaderFieldError(f"{where}: signers must list 32-byte Ed25519 public keys")
    return tuple(items)


def check_signers(signers: tuple[bytes, ...], where: str) -> None:
    """One to 16 distinct 32-byte keys.

    Raises:
        HeaderFieldError: Empty, duplicated or not 32-byte keys.
        BundleLimitError: More than 16.
    """
    if len(signers) > MAX_SIGNERS:
        raise BundleLimitError(f"{where}: more than {MAX_SIGNERS} signers")
    if not signers or any(len(k) != PUBLIC_KEY_SIZE for k in signers):
        raise HeaderFieldError(f"{where}: signers must list 32-byte Ed25519 public keys")
    if len(set(signers)) != len(signers):
        raise HeaderFieldError(f"{where}: a signer is listed twice")


def check_mount(mount: str, where: str) -> str:
    """A mount is `/data/` then a safe relative path (§5.3 rules).

    Raises:
        HeaderFieldError: Not under `/data/`.
        UnsafePathError: The rest is not a safe path.
    """
    if not mount.startswith(DATA_ROOT):
        raise HeaderFieldError(f"{where}: mount {mount!r} must start with {DATA_ROOT}")
    check_path(mount.removeprefix(DATA_ROOT), where)
    return mount


@dataclass(frozen=True)
class DataRule:
    """One `[[data]]` entry of an app manifest: the data bundle it accepts (§5.7)."""

    name: str
    signers: tuple[bytes, ...]
    versions: VersionRange
    mount: str
    required: bool = True

    def __post_init__(self) -> None:
        where = f"data {self.name!r}"
        check_signers(self.signers, where)
        check_mount(self.mount, where)

    def to_cbor_obj(self) -> dict[str, Any]:
        """`{name, signers, versions, mount, required}`."""
        return {
            "mount": self.mount,
            "name": self.name,
            "required": self.required,
            "signers": list(self.signers),
            "versions": self.versions.text,
        }

    @classmethod
    def from_cbor_obj(cls, obj: object) -> DataRule:
        """Parse one `data` map.

        Raises:
            HeaderFieldError: A field is missing, unknown or invalid.
        """
        where = "manifest: data"
        m = fields(obj, {"mount", "name", "required", "signers", "versions"}, set(), where)
        return cls(
            name=get_text(m, "name", where, 64),
            signers=_signers(m, where),
            versions=VersionRange(get_text(m, "versions", where, MAX_RANGE_BYTES)),
            mount=get_text(m, "mount", where, 1024),
            required=get_bool(m, "required", where),
        )


@dataclass(frozen=True)
class AppGrant:
    """One `[[apps]]` entry of a data manifest: an app that may read the data (§5.7)."""

    name: str
    signers: tuple[bytes, ...]
    versions: VersionRange

    def __post_init__(self) -> None:
        check_signers(self.signers, f"apps {self.name!r}")

    def to_cbor_obj(self) -> dict[str, Any]:
        """`{name, signers, versions}`."""
        return {"name": self.name, "signers": list(self.signers), "versions": self.versions.text}

    def admits(self, name: str, version: str, signer: bytes) -> bool:
        """Whether the app `name` `version` signed by `signer` is granted."""
        return name == self.name and signer in self.signers and self.versions.admits(version)

    @classmethod
    def from_cbor_obj(cls, obj: object) -> AppGrant:
        """Parse one `apps` map.

        Raises:
            HeaderFieldError: A field is missing, unknown or invalid.
        """
        where = "manifest: apps"
        m = fields(obj, {"name", "signers", "versions"}, set(), where)
        return cls(
            name=get_text(m, "name", where, 64),
            signers=_signers(m, where),
            versions=VersionRange(get_text(m, "versions", where, MAX_RANGE_BYTES)),
        )


@dataclass(frozen=True)
class DataTerms:
    """A data provider's limits on what a run reading its data releases (§5.7).

    `max_output_bytes` counts every byte released: stdout, stderr and output files.
    `output_paths` are fnmatch patterns on paths relative to `/output/`; None allows any.
    """

    stdout: bool = True
    stderr: bool = True
    max_output_bytes: int | None = None
    output_paths: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.max_output_bytes is not None and not 0 <= self.max_output_bytes <= 1 << 50:
            raise HeaderFieldError("terms: max_output_bytes out of range")
        paths = self.output_paths
        if paths is not None and (
            len(paths) > MAX_OUTPUT_PATHS
            or not all(p and len(p.encode()) <= 1024 and "\x00" not in p for p in paths)
        ):
            raise HeaderFieldError("terms: output_paths must list at most 64 patterns")

    def to_cbor_obj(self) -> dict[str, Any]:
        """`{stdout, stderr}` plus the optional limits when set."""
        obj: dict[str, Any] = {"stderr": self.stderr, "stdout": self.stdout}
        if self.max_output_bytes is not None:
            obj["max_output_bytes"] = self.max_output_bytes
        if self.output_paths is not None:
            obj["output_paths"] = list(self.output_paths)
        return obj

    @classmethod
    def from_cbor_obj(cls, obj: object) -> DataTerms:
        """Parse the `terms` map.

        Raises:
            HeaderFieldError: A field is missing, unknown or invalid.
        """
        where = "manifest: terms"
        m = fields(obj, {"stderr", "stdout"}, {"max_output_bytes", "output_paths"}, where)
        paths = None
        if "output_paths" in m:
            paths = get_list(m, "output_paths", where, MAX_OUTPUT_PATHS)
            if not all(isinstance(p, str) for p in paths):
                raise HeaderFieldError(f"{where}: output_paths must be text")
        return cls(
            stdout=get_bool(m, "stdout", where),
            stderr=get_bool(m, "stderr", where),
            max_output_bytes=get_int(m, "max_output_bytes", where, 0, 1 << 50)
            if "max_output_bytes" in m
            else None,
            output_paths=tuple(paths) if paths is not None else None,
        )


def check_rules(rules: tuple[DataRule, ...]) -> None:
    """At most 32 rules, names and mounts unique, no mount inside another.

    Raises:
        HeaderFieldError: A duplicated name or overlapping mounts.
        BundleLimitError: More than 32 rules.
    """
    if len(rules) > MAX_RULES:
        raise BundleLimitError(f"manifest: more than {MAX_RULES} data entries")
    names: set[str] = set()
    mounts: list[str] = []
    for rule in rules:
        if rule.name in names:
            raise HeaderFieldError(f"manifest: data {rule.name!r} is listed twice")
        names.add(rule.name)
        for other in mounts:
            if (
                rule.mount == other
                or (rule.mount + "/").startswith(other + "/")
                or (other + "/").startswith(rule.mount + "/")
            ):
                raise HeaderFieldError(
                    f"manifest: data mounts {other!r} and {rule.mount!r} overlap"
                )
        mounts.append(rule.mount)
