# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The manifest: what a bundle holds and how it may be run (specs/bundle-format.md §5).

Every class validates itself at construction, so a `Manifest` object is always
valid; `Manifest.from_cbor_obj` applies a reader's tighter limits on top. Its rows live in
`manifest_entries` (§5.1 to §5.4) and its run environment in `manifest_env` (§5, §5.8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from package_format.bundle._fields import fields, get_int, get_list, get_text
from package_format.bundle.access import AppGrant, DataRule, DataTerms, check_rules
from package_format.bundle.errors import BundleLimitError, HeaderFieldError, UnsafePathError
from package_format.bundle.limits import DEFAULT_LIMITS, BundleLimits
from package_format.bundle.manifest_entries import (
    Entrypoint,
    FileEntry,
    OutputPolicy,
    check_name,
    check_version,
)
from package_format.bundle.manifest_env import Environment, EnvPolicy
from package_format.bundle.paths import path_sort_key

# Re-exported: callers import the manifest's parts from here.
__all__ = [
    "BUNDLE_KINDS",
    "MAX_RUN_SECONDS",
    "MAX_TIME",
    "Entrypoint",
    "EnvPolicy",
    "Environment",
    "FileEntry",
    "Manifest",
    "OutputPolicy",
    "check_name",
    "check_version",
]

#: §5.7: what a bundle is; `app` is the default and is never written (older bundles unchanged).
BUNDLE_KINDS = frozenset({"app", "data"})
MAX_TIME = 2**40  # seconds since the epoch; far beyond any real date
MAX_RUN_SECONDS = 2**31  # §5: the owner's ceiling on one run (about 68 years)


@dataclass(frozen=True)
class Manifest:
    """Name, version, validity, entrypoints, output policy and file table (§5)."""

    name: str
    version: str
    created: int
    entrypoints: tuple[Entrypoint, ...]
    output: OutputPolicy
    files: tuple[FileEntry, ...]
    not_before: int | None = None
    expires: int | None = None
    max_run_seconds: int | None = None
    env: EnvPolicy | None = None
    environment: Environment | None = None
    kind: str = "app"
    data: tuple[DataRule, ...] = ()
    apps: tuple[AppGrant, ...] = ()
    terms: DataTerms | None = None
    payload_size: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "entrypoints", tuple(self.entrypoints))
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "data", tuple(self.data))
        object.__setattr__(self, "apps", tuple(self.apps))
        self.validate(DEFAULT_LIMITS)
        object.__setattr__(self, "payload_size", sum(f.size for f in self.files))

    def validate(self, limits: BundleLimits) -> None:
        """Check the cross-field rules of §5 against `limits`.

        Raises:
            HeaderFieldError: A rule of §5 is broken.
            UnsafePathError: The file table is not in canonical order or lacks a parent.
            BundleLimitError: A count or size is over the limits.
        """
        check_name(self.name, "manifest", limits)
        check_version(self.version, "manifest", limits)
        for key in ("created", "not_before", "expires"):
            value = getattr(self, key)
            if value is not None and not 0 <= value <= MAX_TIME:
                raise HeaderFieldError(f"manifest: {key} out of range")
        if (
            self.not_before is not None
            and self.expires is not None
            and self.not_before >= self.expires
        ):
            raise HeaderFieldError("manifest: not_before must be before expires")
        if self.max_run_seconds is not None and not 1 <= self.max_run_seconds <= MAX_RUN_SECONDS:
            raise HeaderFieldError(f"manifest: max_run_seconds must be 1 to {MAX_RUN_SECONDS}")
        if len(self.files) > limits.max_files:
            raise BundleLimitError(f"manifest: more than {limits.max_files} files")
        self._check_file_table(limits)
        if self.kind not in BUNDLE_KINDS:
            raise HeaderFieldError(f"manifest: kind must be one of {sorted(BUNDLE_KINDS)}")
        if self.kind == "data":
            self._check_data_kind(limits)
        else:
            if self.apps or self.terms is not None:
                raise HeaderFieldError("manifest: only a data bundle has apps or terms")
            self._check_entrypoints(limits)
            check_rules(self.data)
            for rule in self.data:
                check_name(rule.name, f"manifest: data {rule.name!r}", limits)

    def _check_data_kind(self, limits: BundleLimits) -> None:
        """§5.7: a data bundle has files and apps, nothing that runs."""
        if self.entrypoints or self.data or self.env is not None or self.environment is not None:
            raise HeaderFieldError(
                "manifest: a data bundle has no entrypoints, data, env or environment"
            )
        if self.max_run_seconds is not None or self.output != OutputPolicy():
            raise HeaderFieldError("manifest: a data bundle has no max_run_seconds or output")
        if not self.apps:
            raise HeaderFieldError("manifest: a data bundle must list at least one app")
        if len(self.apps) > limits.max_entrypoints:
            raise BundleLimitError(f"manifest: more than {limits.max_entrypoints} apps")
        for grant in self.apps:
            check_name(grant.name, f"manifest: apps {grant.name!r}", limits)

    def _check_file_table(self, limits: BundleLimits) -> None:
        kinds: dict[str, str] = {}
        previous: tuple[str, ...] | None = None
        total = 0
        for entry in self.files:
            key = path_sort_key(entry.path)
            if previous is not None and key <= previous:
                raise UnsafePathError(f"file table: {entry.path!r} is out of order or duplicated")
            previous = key
            if len(key) > 1 and kinds.get("/".join(key[:-1])) != "dir":
                raise UnsafePathError(f"file table: parent of {entry.path!r} is not a directory")
            kinds[entry.path] = entry.kind
            total += entry.size
        if total > limits.max_payload_size:
            raise BundleLimitError(f"manifest: payload over {limits.max_payload_size} bytes")

    def _check_entrypoints(self, limits: BundleLimits) -> None:
        if not self.entrypoints:
            raise HeaderFieldError("manifest: at least one entrypoint is required")
        if len(self.entrypoints) > limits.max_entrypoints:
            raise BundleLimitError(f"manifest: more than {limits.max_entrypoints} entrypoints")
        files = {f.path: f for f in self.files}
        names: set[str] = set()
        for entry in self.entrypoints:
            if entry.name in names:
                raise HeaderFieldError(f"manifest: entrypoint {entry.name!r} is duplicated")
            names.add(entry.name)
            target = files.get(entry.path)
            if target is None or target.kind != "file":
                raise HeaderFieldError(
                    f"entrypoint {entry.name!r}: {entry.path!r} is not a file in the bundle"
                )
            if entry.runtime == "exec" and target.mode != 0o755:
                raise HeaderFieldError(
                    f"entrypoint {entry.name!r}: an exec entrypoint needs mode 0o755"
                )

    def entrypoint(self, name: str) -> Entrypoint | None:
        """Return the entrypoint called `name`, or None."""
        return next((e for e in self.entrypoints if e.name == name), None)

    def to_cbor_obj(self) -> dict[str, Any]:
        """Return the CBOR map of this manifest (§5); optional times are omitted when unset."""
        if self.kind == "data":
            return self._data_cbor_obj()
        obj: dict[str, Any] = {
            "created": self.created,
            "entrypoints": [e.to_cbor_obj() for e in self.entrypoints],
            "files": [f.to_cbor_obj() for f in self.files],
            "name": self.name,
            "output": self.output.to_cbor_obj(),
            "version": self.version,
        }
        if self.not_before is not None:
            obj["not_before"] = self.not_before
        if self.expires is not None:
            obj["expires"] = self.expires
        if self.max_run_seconds is not None:
            obj["max_run_seconds"] = self.max_run_seconds
        if self.env is not None:
            obj["env"] = self.env.to_cbor_obj()
        if self.environment is not None:
            obj["environment"] = self.environment.to_cbor_obj()
        if self.data:
            obj["data"] = [r.to_cbor_obj() for r in self.data]
        return obj

    def _data_cbor_obj(self) -> dict[str, Any]:
        """§5.7: a data manifest's map (no entrypoints, output, env or run limit)."""
        obj: dict[str, Any] = {
            "apps": [g.to_cbor_obj() for g in self.apps],
            "created": self.created,
            "files": [f.to_cbor_obj() for f in self.files],
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
        }
        for key in ("not_before", "expires"):
            if getattr(self, key) is not None:
                obj[key] = getattr(self, key)
        if self.terms is not None:
            obj["terms"] = self.terms.to_cbor_obj()
        return obj

    @classmethod
    def from_cbor_obj(cls, obj: object, limits: BundleLimits = DEFAULT_LIMITS) -> Manifest:
        """Build a manifest from its decoded CBOR map, applying `limits`.

        Raises:
            HeaderFieldError: A field is missing, unknown or invalid.
            UnsafePathError: A path is unsafe or the file table is not canonical.
            BundleLimitError: A count or size is over the limits.
        """
        where = "manifest"
        if isinstance(obj, dict) and "kind" in obj:
            return cls._data_from_cbor_obj(obj, limits)
        m = fields(
            obj,
            {"created", "entrypoints", "files", "name", "output", "version"},
            {"not_before", "expires", "max_run_seconds", "env", "data", "environment"},
            where,
        )
        entries = get_list(m, "entrypoints", where, limits.max_entrypoints)
        files = get_list(m, "files", where, limits.max_files)
        manifest = cls(
            name=get_text(m, "name", where, limits.max_name_bytes),
            version=get_text(m, "version", where, limits.max_version_bytes),
            created=get_int(m, "created", where, 0, MAX_TIME),
            entrypoints=tuple(Entrypoint.from_cbor_obj(e, "entrypoint") for e in entries),
            output=OutputPolicy.from_cbor_obj(m["output"]),
            files=tuple(FileEntry.from_cbor_obj(f, limits) for f in files),
            not_before=get_int(m, "not_before", where, 0, MAX_TIME) if "not_before" in m else None,
            expires=get_int(m, "expires", where, 0, MAX_TIME) if "expires" in m else None,
            max_run_seconds=get_int(m, "max_run_seconds", where, 1, MAX_RUN_SECONDS)
            if "max_run_seconds" in m
            else None,
            env=EnvPolicy.from_cbor_obj(m["env"]) if "env" in m else None,
            environment=Environment.from_cbor_obj(m["environment"]) if "environment" in m else None,
            data=tuple(DataRule.from_cbor_obj(r) for r in get_list(m, "data", where, 32))
            if "data" in m
            else (),
        )
        if "data" in m and not manifest.data:
            raise HeaderFieldError(f"{where}: data is omitted when empty")
        if limits != DEFAULT_LIMITS:
            manifest.validate(limits)
        return manifest

    @classmethod
    def _data_from_cbor_obj(cls, obj: dict[str, Any], limits: BundleLimits) -> Manifest:
        """§5.7: parse a data manifest (`kind` present, and then it MUST be `data`)."""
        where = "manifest"
        m = fields(
            obj,
            {"apps", "created", "files", "kind", "name", "version"},
            {"not_before", "expires", "terms"},
            where,
        )
        if m["kind"] != "data":
            raise HeaderFieldError(f"{where}: kind is written only for a data bundle")
        files = get_list(m, "files", where, limits.max_files)
        apps = get_list(m, "apps", where, limits.max_entrypoints)
        manifest = cls(
            name=get_text(m, "name", where, limits.max_name_bytes),
            version=get_text(m, "version", where, limits.max_version_bytes),
            created=get_int(m, "created", where, 0, MAX_TIME),
            entrypoints=(),
            output=OutputPolicy(),
            files=tuple(FileEntry.from_cbor_obj(f, limits) for f in files),
            not_before=get_int(m, "not_before", where, 0, MAX_TIME) if "not_before" in m else None,
            expires=get_int(m, "expires", where, 0, MAX_TIME) if "expires" in m else None,
            kind="data",
            apps=tuple(AppGrant.from_cbor_obj(a) for a in apps),
            terms=DataTerms.from_cbor_obj(m["terms"]) if "terms" in m else None,
        )
        if limits != DEFAULT_LIMITS:
            manifest.validate(limits)
        return manifest
