# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The manifest: what a bundle holds and how it may be run (specs/bundle-format.md §5).

Every class validates itself at construction, so a `Manifest` object is always
valid; `Manifest.from_cbor_obj` applies a reader's tighter limits on top.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from package_format.bundle._fields import fields, get_bool, get_int, get_list, get_text
from package_format.bundle.access import AppGrant, DataRule, DataTerms, check_rules
from package_format.bundle.errors import BundleLimitError, HeaderFieldError, UnsafePathError
from package_format.bundle.limits import DEFAULT_LIMITS, DIR_MODE, FILE_MODES, BundleLimits
from package_format.bundle.paths import check_path, path_sort_key

# specs/bundle-format.md §5.1
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
ENTRY_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
SEMVER_RE = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
RUNTIMES = frozenset({"python", "exec"})
KINDS = frozenset({"file", "dir"})
#: §5.7: what a bundle is; `app` is the default and is never written (older bundles unchanged).
BUNDLE_KINDS = frozenset({"app", "data"})
MAX_TIME = 2**40  # seconds since the epoch; far beyond any real date
MAX_RUN_SECONDS = 2**31  # §5: the owner's ceiling on one run (about 68 years)
SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")
MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
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


def check_name(name: str, where: str, limits: BundleLimits = DEFAULT_LIMITS) -> str:
    """Check a bundle name (§5.1) and return it.

    Raises:
        HeaderFieldError: The name does not match `[a-z0-9][a-z0-9._-]*`.
        BundleLimitError: The name is too long.
    """
    if len(name.encode()) > limits.max_name_bytes:
        raise BundleLimitError(f"{where}: name longer than {limits.max_name_bytes} bytes")
    if not NAME_RE.fullmatch(name):
        raise HeaderFieldError(f"{where}: name {name!r} must match [a-z0-9][a-z0-9._-]*")
    return name


def check_version(version: str, where: str, limits: BundleLimits = DEFAULT_LIMITS) -> str:
    """Check a semantic version string (§5.1, SemVer 2.0.0) and return it.

    Raises:
        HeaderFieldError: The version is not a SemVer 2.0.0 version.
        BundleLimitError: The version is too long.
    """
    if len(version.encode()) > limits.max_version_bytes:
        raise BundleLimitError(f"{where}: version longer than {limits.max_version_bytes} bytes")
    if not SEMVER_RE.fullmatch(version):
        raise HeaderFieldError(f"{where}: version {version!r} is not a semantic version")
    return version


@dataclass(frozen=True)
class Entrypoint:
    """A program the user may run: `name` selects it, `path` is in the file table (§5.2)."""

    name: str
    path: str
    runtime: str = "python"
    allow_args: bool = True
    module: str | None = None

    def __post_init__(self) -> None:
        where = f"entrypoint {self.name!r}"
        if not ENTRY_NAME_RE.fullmatch(self.name) or len(self.name.encode()) > 255:
            raise HeaderFieldError(f"{where}: name must match [A-Za-z0-9][A-Za-z0-9._/-]*")
        check_path(self.path, where)
        if self.runtime not in RUNTIMES:
            raise HeaderFieldError(f"{where}: runtime must be one of {sorted(RUNTIMES)}")
        if self.module is not None:
            check_module(self.module, self.path, self.runtime, where)

    def to_cbor_obj(self) -> dict[str, Any]:
        """Return the CBOR map of this entrypoint (§5.2); `module` only when set."""
        obj: dict[str, Any] = {
            "allow_args": self.allow_args,
            "name": self.name,
            "path": self.path,
            "runtime": self.runtime,
        }
        if self.module is not None:
            obj["module"] = self.module
        return obj

    @classmethod
    def from_cbor_obj(cls, obj: object, where: str) -> Entrypoint:
        """Build an entrypoint from its decoded CBOR map.

        Raises:
            HeaderFieldError: A field is missing, unknown or invalid.
            UnsafePathError: The path is unsafe.
        """
        m = fields(obj, {"allow_args", "name", "path", "runtime"}, {"module"}, where)
        return cls(
            name=get_text(m, "name", where, 255),
            path=get_text(m, "path", where, DEFAULT_LIMITS.max_path_bytes),
            runtime=get_text(m, "runtime", where, 16),
            allow_args=get_bool(m, "allow_args", where),
            module=get_text(m, "module", where, 255) if "module" in m else None,
        )


def module_paths(module: str) -> tuple[str, str]:
    """The two files `python -m MODULE` may run: `a/b.py` or `a/b/__main__.py`."""
    base = module.replace(".", "/")
    return f"{base}.py", f"{base}/__main__.py"


def check_module(module: str, path: str, runtime: str, where: str) -> None:
    """Check a `python -m` entrypoint: a dotted name whose file is `path` (§5.2).

    Raises:
        HeaderFieldError: Not a dotted name, not a Python entrypoint, or another file.
    """
    if not MODULE_RE.fullmatch(module) or len(module) > 255:
        raise HeaderFieldError(f"{where}: module {module!r} is not a dotted module name")
    if runtime != "python":
        raise HeaderFieldError(f"{where}: a module entrypoint must have runtime python")
    if path not in module_paths(module):
        raise HeaderFieldError(
            f"{where}: path of module {module!r} must be one of {list(module_paths(module))}"
        )


@dataclass(frozen=True)
class OutputPolicy:
    """What the enclave may hand back to the user (§5.4)."""

    stdout: bool = True
    stderr: bool = False
    files: bool = True
    max_files_size: int = 1 << 30

    def __post_init__(self) -> None:
        if not 0 <= self.max_files_size <= 1 << 50:
            raise HeaderFieldError("output: max_files_size out of range")
        if not self.files and self.max_files_size != 0:
            raise HeaderFieldError("output: max_files_size must be 0 when files are not allowed")

    def to_cbor_obj(self) -> dict[str, Any]:
        """Return the CBOR map of this policy (§5.4)."""
        return {
            "files": self.files,
            "max_files_size": self.max_files_size,
            "stderr": self.stderr,
            "stdout": self.stdout,
        }

    @classmethod
    def from_cbor_obj(cls, obj: object) -> OutputPolicy:
        """Build a policy from its decoded CBOR map.

        Raises:
            HeaderFieldError: A field is missing, unknown or invalid.
        """
        where = "output"
        m = fields(obj, {"files", "max_files_size", "stderr", "stdout"}, set(), where)
        return cls(
            stdout=get_bool(m, "stdout", where),
            stderr=get_bool(m, "stderr", where),
            files=get_bool(m, "files", where),
            max_files_size=get_int(m, "max_files_size", where),
        )


@dataclass(frozen=True)
class FileEntry:
    """One file-table row: a regular file or a directory (§5.3)."""

    path: str
    size: int
    mode: int
    kind: str = "file"

    def __post_init__(self) -> None:
        where = f"file {self.path!r}"
        check_path(self.path, "file table")
        if self.kind not in KINDS:
            raise HeaderFieldError(f"{where}: kind must be 'file' or 'dir'")
        if self.kind == "dir" and (self.size != 0 or self.mode != DIR_MODE):
            raise HeaderFieldError(f"{where}: a directory has size 0 and mode 0o755")
        if self.kind == "file" and self.mode not in FILE_MODES:
            raise HeaderFieldError(f"{where}: mode must be 0o644 or 0o755")
        if self.size < 0:
            raise HeaderFieldError(f"{where}: size must not be negative")

    def to_cbor_obj(self) -> dict[str, Any]:
        """Return the CBOR map of this row (§5.3)."""
        return {"kind": self.kind, "mode": self.mode, "path": self.path, "size": self.size}

    @classmethod
    def from_cbor_obj(cls, obj: object, limits: BundleLimits) -> FileEntry:
        """Build a row from its decoded CBOR map.

        Raises:
            HeaderFieldError: A field is missing, unknown or invalid.
            UnsafePathError: The path is unsafe.
            BundleLimitError: The path or size is over the limits.
        """
        m = fields(obj, {"kind", "mode", "path", "size"}, set(), "file table")
        path = check_path(m["path"], "file table", limits)
        where = f"file {path!r}"
        size = get_int(m, "size", where)
        if size > limits.max_file_size:
            raise BundleLimitError(f"{where}: size over {limits.max_file_size} bytes")
        return cls(
            path=path,
            size=size,
            mode=get_int(m, "mode", where, 0, 0o7777),
            kind=get_text(m, "kind", where, 8),
        )


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
