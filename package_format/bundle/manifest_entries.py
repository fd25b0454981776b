# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The manifest's rows: names and versions, entrypoints, output policy, file table.

specs/bundle-format.md §5.1 to §5.4; each class validates itself at construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from package_format.bundle._fields import fields, get_bool, get_int, get_text
from package_format.bundle.errors import BundleLimitError, HeaderFieldError
from package_format.bundle.limits import DEFAULT_LIMITS, DIR_MODE, FILE_MODES, BundleLimits
from package_format.bundle.paths import check_path

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
MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


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
