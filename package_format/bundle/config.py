# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The owner's `bundle.toml` (specs/bundle-format.md §5.5): TOML text in, `BundleConfig` out.

Pure: the text is passed in; pack adds the file table and the creation time.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from package_format.bundle.access import AppGrant, DataRule, DataTerms
from package_format.bundle.config_access import parse_app_grants, parse_data_rules, parse_terms
from package_format.bundle.errors import ManifestConfigError
from package_format.bundle.manifest import (
    MAX_RUN_SECONDS,
    Entrypoint,
    EnvPolicy,
    OutputPolicy,
    check_name,
    check_version,
)
from package_format.errors import PackageFormatError
from package_format.limits import DECODE_LIMITS

TOP_KEYS = {"name", "version", "entrypoints", "output", "not_before", "expires",
            "encryption_context", "exclude", "run", "env", "kind", "data", "apps",
            "terms", "environment"}  # fmt: skip
ENVIRONMENT_KEYS = {"requirements"}
ENV_KEYS = {"allow", "defaults"}
RUN_KEYS = {"max_seconds"}
ENTRY_KEYS = {"path", "name", "runtime", "allow_args", "module"}
OUTPUT_KEYS = {"stdout", "stderr", "files", "max_files_size"}
MAX_TOML_SIZE = 1 << 20


@dataclass(frozen=True)
class BundleConfig:
    """What `bundle.toml` says; every field can be overridden by pack's flags."""

    name: str | None = None
    version: str | None = None
    entrypoints: tuple[Entrypoint, ...] = ()
    output: OutputPolicy = field(default_factory=OutputPolicy)
    not_before: int | None = None
    expires: int | None = None
    encryption_context: dict[str, str] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    max_run_seconds: int | None = None
    env: EnvPolicy | None = None
    #: `[environment] requirements`: the app's hashed requirements file, relative to the
    #: app folder; pack records its SHA-256 in the manifest (§5.8).
    environment_requirements: str | None = None
    kind: str = "app"
    data: tuple[DataRule, ...] = ()
    apps: tuple[AppGrant, ...] = ()
    terms: DataTerms | None = None


def default_runtime(path: str) -> str:
    """Return `python` for `*.py` entrypoints, `exec` otherwise (§5.2)."""
    return "python" if path.endswith(".py") else "exec"


def _check_keys(table: object, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ManifestConfigError(f"{where}: expected a table")
    unknown = set(table) - allowed
    if unknown:
        raise ManifestConfigError(f"{where}: unknown key {min(unknown)!r}")
    return table


def _typed(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestConfigError(f"{where}: {key} must be a {kind.__name__}")
    return value


def _time(table: dict[str, Any], key: str) -> int | None:
    """A TOML offset date-time, or a local date (midnight UTC), as Unix seconds."""
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ManifestConfigError(f"bundle.toml: {key} needs a time zone (e.g. ...Z)")
        return int(value.timestamp())
    if isinstance(value, dt.date):
        return int(dt.datetime.combine(value, dt.time(), dt.UTC).timestamp())
    raise ManifestConfigError(f"bundle.toml: {key} must be a TOML date or date-time")


def module_path(module: str | None) -> str:
    """The default file of a module entrypoint, `a/b.py` (a package's needs `path`)."""
    return str(module).replace(".", "/") + ".py"


def parse_entrypoint(obj: object, where: str) -> Entrypoint:
    """Build an entrypoint from a `[[entrypoints]]` table.

    Raises:
        ManifestConfigError: The table does not follow §5.5.
    """
    table = _check_keys(obj, ENTRY_KEYS, where)
    module = _typed(table, "module", str, where) if "module" in table else None
    if "path" not in table and module is None:
        raise ManifestConfigError(f"{where}: path (or module) is required")
    path = _typed(table, "path", str, where) if "path" in table else module_path(module)
    try:
        return Entrypoint(
            name=_typed(table, "name", str, where) if "name" in table else (module or path),
            module=module,
            path=path,
            runtime=_typed(table, "runtime", str, where)
            if "runtime" in table
            else default_runtime(path),
            allow_args=_typed(table, "allow_args", bool, where) if "allow_args" in table else True,
        )
    except PackageFormatError as exc:
        raise ManifestConfigError(f"bundle.toml: {exc}") from exc


def parse_bundle_toml(text: str) -> BundleConfig:
    """Parse the text of `bundle.toml` (§5.5).

    Raises:
        ManifestConfigError: Not TOML, unknown keys, wrong types or invalid values.
    """
    if len(text) > MAX_TOML_SIZE:
        raise ManifestConfigError("bundle.toml: larger than 1 MiB")
    if toml_depth(text) > DECODE_LIMITS.max_toml_depth:
        raise ManifestConfigError(
            f"bundle.toml: nested deeper than {DECODE_LIMITS.max_toml_depth} levels"
        )
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        # ValueError: an integer over Python's 4,300-digit conversion limit.
        raise ManifestConfigError(f"bundle.toml: not valid toml ({_short(exc)})") from exc
    top = _check_keys(data, TOP_KEYS, "bundle.toml")
    try:
        return _parse_top(top)
    except ManifestConfigError:
        raise
    except PackageFormatError as exc:
        raise ManifestConfigError(f"bundle.toml: {exc}") from exc


# Strings (multi-line first) and comments, removed before brackets are counted.
_TOML_SKIP = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*'
)
_TOML_BRACKET = re.compile(r"[\[\]{}]")


def toml_depth(text: str) -> int:
    """The deepest nesting of `[`/`{` outside strings and comments (§5.5).

    Runs before the parser, without recursion, so deep nesting is refused cheaply.
    """
    depth = deepest = 0
    for match in _TOML_BRACKET.finditer(_TOML_SKIP.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _parse_top(top: dict[str, Any]) -> BundleConfig:
    where = "bundle.toml"
    name = check_name(_typed(top, "name", str, where), where) if "name" in top else None
    version = check_version(_typed(top, "version", str, where), where) if "version" in top else None
    entries_raw = _typed(top, "entrypoints", list, where) if "entrypoints" in top else []
    entries = tuple(
        parse_entrypoint(e, f"bundle.toml: entrypoints[{i}]") for i, e in enumerate(entries_raw)
    )
    context = top.get("encryption_context", {})
    if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
        raise ManifestConfigError(f"{where}: encryption_context values must be strings")
    exclude = _typed(top, "exclude", list, where) if "exclude" in top else []
    if not all(isinstance(p, str) and p for p in exclude):
        raise ManifestConfigError(f"{where}: exclude must be a list of glob patterns")
    return BundleConfig(
        name=name,
        version=version,
        entrypoints=entries,
        output=_parse_output(top.get("output", {})),
        not_before=_time(top, "not_before"),
        expires=_time(top, "expires"),
        encryption_context=dict(context),
        exclude=tuple(exclude),
        max_run_seconds=_parse_run(top.get("run", {})),
        env=_parse_env(top["env"]) if "env" in top else None,
        environment_requirements=_parse_environment(top["environment"])
        if "environment" in top
        else None,
        **_parse_access(top),
    )


def _parse_access(top: dict[str, Any]) -> dict[str, Any]:
    """`kind`, `[[data]]`, `[[apps]]`, `[terms]` (§5.7)."""
    kind = top.get("kind", "app")
    if kind not in {"app", "data"}:
        raise ManifestConfigError("bundle.toml: kind must be app or data")
    if top.get("kind") == "app" and ("apps" in top or "terms" in top):
        raise ManifestConfigError("bundle.toml: apps and terms are for kind = data")
    if kind == "data" and any(k in top for k in ("data", "entrypoints", "env", "environment")):
        raise ManifestConfigError(
            "bundle.toml: a data bundle has no data, entrypoints, env or environment"
        )
    return {
        "kind": kind,
        "data": parse_data_rules(top["data"]) if "data" in top else (),
        "apps": parse_app_grants(top["apps"]) if "apps" in top else (),
        "terms": parse_terms(top["terms"]) if "terms" in top else None,
    }


def _parse_environment(obj: object) -> str:
    """`[environment] requirements = "requirements.txt"` (§5.5, §5.8)."""
    where = "bundle.toml: environment"
    table = _check_keys(obj, ENVIRONMENT_KEYS, where)
    if "requirements" not in table:
        raise ManifestConfigError(f"{where}: requirements is required")
    path: str = _typed(table, "requirements", str, where)
    if not path or path.startswith("/") or ".." in path.split("/"):
        raise ManifestConfigError(f"{where}: requirements must be a path inside the app folder")
    return path


def _parse_env(obj: object) -> EnvPolicy:
    """`[env] allow = [NAMES]`, `[env.defaults] NAME = "value"` (§5.5)."""
    where = "bundle.toml: env"
    table = _check_keys(obj, ENV_KEYS, where)
    allow = _typed(table, "allow", list, where) if "allow" in table else []
    defaults = table.get("defaults", {})
    if not all(isinstance(n, str) for n in allow):
        raise ManifestConfigError(f"{where}: allow must be a list of names")
    if not isinstance(defaults, dict) or not all(isinstance(v, str) for v in defaults.values()):
        raise ManifestConfigError(f"{where}: defaults values must be strings")
    try:
        return EnvPolicy(tuple(allow), tuple(defaults.items()))
    except PackageFormatError as exc:
        raise ManifestConfigError(f"{where}: {str(exc).removeprefix('manifest: env: ')}") from exc


def _parse_run(obj: object) -> int | None:
    """`[run] max_seconds`: the owner's ceiling on a run's duration (§5.5)."""
    where = "bundle.toml: run"
    table = _check_keys(obj, RUN_KEYS, where)
    if "max_seconds" not in table:
        return None
    value: int = _typed(table, "max_seconds", int, where)
    if not 1 <= value <= MAX_RUN_SECONDS:
        raise ManifestConfigError(f"{where}: max_seconds must be 1 to {MAX_RUN_SECONDS}")
    return value


def _parse_output(obj: object) -> OutputPolicy:
    where = "bundle.toml: output"
    table = _check_keys(obj, OUTPUT_KEYS, where)
    files = _typed(table, "files", bool, where) if "files" in table else True
    default_cap = OutputPolicy().max_files_size if files else 0
    return OutputPolicy(
        stdout=_typed(table, "stdout", bool, where) if "stdout" in table else True,
        stderr=_typed(table, "stderr", bool, where) if "stderr" in table else False,
        files=files,
        max_files_size=_typed(table, "max_files_size", int, where)
        if "max_files_size" in table
        else default_cap,
    )
