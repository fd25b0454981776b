# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Data bundles in the format (specs/bundle-format.md §5.7): kinds, rules, ranges, bundle.toml."""

from __future__ import annotations

import pytest

from package_format.bundle.access import AppGrant, DataRule, DataTerms, VersionRange
from package_format.bundle.config import parse_bundle_toml
from package_format.bundle.errors import HeaderFieldError, ManifestConfigError, UnsafePathError
from package_format.bundle.manifest import Entrypoint, FileEntry, Manifest, OutputPolicy

KEY = bytes(range(32))
FILES = (FileEntry("rows.csv", 3, 0o644),)


def _data(**kw) -> Manifest:
    args = {
        "name": "records", "version": "1.0.0", "created": 0, "entrypoints": (),
        "output": OutputPolicy(), "files": FILES, "kind": "data",
        "apps": (AppGrant("scorer", (KEY,), VersionRange("*")),),
    }  # fmt: skip
    return Manifest(**{**args, **kw})


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("*", ["0.0.1", "9.9.9-rc.1"], []),
        (">=1.2.0, <2.0.0", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0", "1.2.0-rc.1"]),
        ("=1.0.0", ["1.0.0", "1.0.0+build.7"], ["1.0.1"]),
        (">1.0.0", ["1.0.1"], ["1.0.0", "not-a-version"]),
    ],
)
def test_version_range_orders_by_semver_precedence(text, inside, outside) -> None:
    r = VersionRange(text)
    assert all(r.admits(v) for v in inside)
    assert not any(r.admits(v) for v in outside)


@pytest.mark.parametrize("text", ["", ">=1.0", "~1.0.0", ">=1.0.0,", "1.0.0 || 2.0.0"])
def test_malformed_version_range_is_refused(text) -> None:
    with pytest.raises(HeaderFieldError):
        VersionRange(text)


def test_data_manifest_round_trips_and_app_manifests_stay_unchanged() -> None:
    data = _data(terms=DataTerms(stderr=False, max_output_bytes=10, output_paths=("a*",)))
    obj = data.to_cbor_obj()
    assert obj["kind"] == "data"
    assert "entrypoints" not in obj
    assert "output" not in obj
    assert Manifest.from_cbor_obj(obj) == data
    app = Manifest("app", "1.0.0", 0, (Entrypoint("m", "rows.csv"),), OutputPolicy(), FILES)
    assert set(app.to_cbor_obj()) == {
        "created",
        "entrypoints",
        "files",
        "name",
        "output",
        "version",
    }


def test_data_bundle_with_an_entrypoint_is_refused() -> None:
    with pytest.raises(HeaderFieldError, match="no entrypoints"):
        _data(entrypoints=(Entrypoint("m", "rows.csv"),))


def test_data_bundle_granting_no_app_is_refused() -> None:
    with pytest.raises(HeaderFieldError, match="at least one app"):
        _data(apps=())


def test_app_with_apps_or_terms_is_refused() -> None:
    with pytest.raises(HeaderFieldError, match="only a data bundle"):
        Manifest("app", "1.0.0", 0, (Entrypoint("m", "rows.csv"),), OutputPolicy(), FILES,
                 terms=DataTerms())  # fmt: skip


def test_data_mount_outside_data_root_is_refused() -> None:
    with pytest.raises(HeaderFieldError, match="/data/"):
        DataRule("records", (KEY,), VersionRange("*"), "/app/records")
    with pytest.raises(UnsafePathError):
        DataRule("records", (KEY,), VersionRange("*"), "/data/../etc")


def test_overlapping_data_mounts_are_refused() -> None:
    rules = (
        DataRule("a", (KEY,), VersionRange("*"), "/data/a"),
        DataRule("b", (KEY,), VersionRange("*"), "/data/a/b"),
    )
    with pytest.raises(HeaderFieldError, match="overlap"):
        Manifest("app", "1.0.0", 0, (Entrypoint("m", "rows.csv"),), OutputPolicy(), FILES,
                 data=rules)  # fmt: skip


APP_TOML = f"""
name = "scorer"
version = "1.0.0"
[[entrypoints]]
path = "main.py"
[[data]]
name = "records"
signers = ["{KEY.hex()}"]
versions = ">=1.0.0, <2.0.0"
required = false
"""

DATA_TOML = f"""
kind = "data"
name = "records"
version = "1.0.0"
[[apps]]
name = "scorer"
signers = ["{KEY.hex()}"]
[terms]
stderr = false
max_output_bytes = 4096
output_paths = ["scores.csv"]
"""


def test_bundle_toml_access_tables() -> None:
    app = parse_bundle_toml(APP_TOML)
    assert app.data == (
        DataRule("records", (KEY,), VersionRange(">=1.0.0, <2.0.0"), "/data/records", False),
    )
    data = parse_bundle_toml(DATA_TOML)
    assert data.kind == "data"
    assert data.apps == (AppGrant("scorer", (KEY,), VersionRange("*")),)
    assert data.terms == DataTerms(True, False, 4096, ("scores.csv",))


@pytest.mark.parametrize(
    "text",
    [
        DATA_TOML + '[[entrypoints]]\npath = "x.py"\n',
        'kind = "app"\n' + APP_TOML + "[terms]\nstdout = false\n",
        APP_TOML.replace(KEY.hex(), "not-a-key"),
        'kind = "model"\nname = "x"\nversion = "1.0.0"\n',
    ],
    ids=["data-with-entrypoints", "app-with-terms", "bad-signer", "unknown-kind"],
)
def test_bad_bundle_toml_access_is_refused(text) -> None:
    with pytest.raises(ManifestConfigError):
        parse_bundle_toml(text)
