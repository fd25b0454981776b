# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""bundle.toml's access tables (specs/bundle-format.md §5.7): `[[data]]`, `[[apps]]`, `[terms]`.

Signer keys are written as 64 lowercase hex digits (the second line of a public key file).
"""

from __future__ import annotations

from typing import Any

from package_format.bundle.access import DATA_ROOT, AppGrant, DataRule, DataTerms, VersionRange
from package_format.bundle.errors import ManifestConfigError
from package_format.errors import PackageFormatError

DATA_KEYS = {"name", "signers", "versions", "mount", "required"}
APPS_KEYS = {"name", "signers", "versions"}
TERMS_KEYS = {"stdout", "stderr", "max_output_bytes", "output_paths"}


def _table(obj: object, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ManifestConfigError(f"{where}: expected a table")
    unknown = set(obj) - allowed
    if unknown:
        raise ManifestConfigError(f"{where}: unknown key {min(unknown)!r}")
    return obj


def _text(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ManifestConfigError(f"{where}: {key} must be a non-empty string")
    return value


def _signers(table: dict[str, Any], where: str) -> tuple[bytes, ...]:
    items = table.get("signers")
    if not isinstance(items, list) or not items:
        raise ManifestConfigError(f"{where}: signers must list public keys (64 hex digits)")
    keys = []
    for item in items:
        text = item.strip() if isinstance(item, str) else ""
        if len(text) != 64 or text != text.lower():
            raise ManifestConfigError(f"{where}: signer {item!r} is not 64 lowercase hex digits")
        try:
            keys.append(bytes.fromhex(text))
        except ValueError as exc:
            raise ManifestConfigError(f"{where}: signer {item!r} is not hex") from exc
    return tuple(keys)


def parse_data_rules(obj: object) -> tuple[DataRule, ...]:
    """The app's `[[data]]` tables; `mount` defaults to `/data/NAME`, `required` to true.

    Raises:
        ManifestConfigError: A table does not follow §5.7.
    """
    if not isinstance(obj, list):
        raise ManifestConfigError("bundle.toml: data must be an array of tables ([[data]])")
    rules = []
    for index, item in enumerate(obj):
        where = f"bundle.toml: data[{index}]"
        table = _table(item, DATA_KEYS, where)
        name = _text(table, "name", where)
        required = table.get("required", True)
        if not isinstance(required, bool):
            raise ManifestConfigError(f"{where}: required must be a boolean")
        try:
            rules.append(
                DataRule(
                    name=name,
                    signers=_signers(table, where),
                    versions=VersionRange(_text(table, "versions", where, "*")),
                    mount=_text(table, "mount", where, DATA_ROOT + name),
                    required=required,
                )
            )
        except PackageFormatError as exc:
            raise ManifestConfigError(f"{where}: {exc}") from exc
    return tuple(rules)


def parse_app_grants(obj: object) -> tuple[AppGrant, ...]:
    """The data bundle's `[[apps]]` tables; `versions` defaults to `*`.

    Raises:
        ManifestConfigError: A table does not follow §5.7.
    """
    if not isinstance(obj, list):
        raise ManifestConfigError("bundle.toml: apps must be an array of tables ([[apps]])")
    grants = []
    for index, item in enumerate(obj):
        where = f"bundle.toml: apps[{index}]"
        table = _table(item, APPS_KEYS, where)
        try:
            grants.append(
                AppGrant(
                    name=_text(table, "name", where),
                    signers=_signers(table, where),
                    versions=VersionRange(_text(table, "versions", where, "*")),
                )
            )
        except PackageFormatError as exc:
            raise ManifestConfigError(f"{where}: {exc}") from exc
    return tuple(grants)


def parse_terms(obj: object) -> DataTerms:
    """The data bundle's `[terms]`: stdout, stderr (default true), the optional limits.

    Raises:
        ManifestConfigError: The table does not follow §5.7.
    """
    where = "bundle.toml: terms"
    table = _table(obj, TERMS_KEYS, where)
    flags = {}
    for key in ("stdout", "stderr"):
        flags[key] = table.get(key, True)
        if not isinstance(flags[key], bool):
            raise ManifestConfigError(f"{where}: {key} must be a boolean")
    limit = table.get("max_output_bytes")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise ManifestConfigError(f"{where}: max_output_bytes must be an integer")
    paths = table.get("output_paths")
    if paths is not None and (
        not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)
    ):
        raise ManifestConfigError(f"{where}: output_paths must be a list of patterns")
    try:
        return DataTerms(
            stdout=flags["stdout"],
            stderr=flags["stderr"],
            max_output_bytes=limit,
            output_paths=tuple(paths) if paths is not None else None,
        )
    except PackageFormatError as exc:
        raise ManifestConfigError(f"{where}: {exc}") from exc
