# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The manifest's `environment` (bundle-format.md §5.8) and bundle.toml's `[environment]`."""

from __future__ import annotations

import pytest

from package_format.bundle.config import parse_bundle_toml
from package_format.bundle.errors import HeaderFieldError, ManifestConfigError
from package_format.bundle.manifest import (
    Entrypoint,
    Environment,
    FileEntry,
    Manifest,
    OutputPolicy,
)

DIGEST = "ab" * 32
TOML = 'name = "a"\nversion = "1.0.0"\n[[entrypoints]]\npath = "m.py"\n'


def _manifest(environment: Environment | None) -> Manifest:
    return Manifest(
        name="a",
        version="1.0.0",
        created=1,
        entrypoints=(Entrypoint("m.py", "m.py"),),
        output=OutputPolicy(),
        files=(FileEntry("m.py", 1, 0o644),),
        environment=environment,
    )


def test_environment_round_trips_and_is_omitted_when_unset() -> None:
    obj = _manifest(Environment(DIGEST)).to_cbor_obj()
    assert obj["environment"] == {"sha256": DIGEST}
    assert Manifest.from_cbor_obj(obj).environment == Environment(DIGEST)
    assert "environment" not in _manifest(None).to_cbor_obj()


@pytest.mark.parametrize(
    "value",
    [{"sha256": DIGEST.upper()}, {"sha256": DIGEST[:-2]}, {"sha256": DIGEST, "x": 1}, {}, "ab"],
    ids=["uppercase", "short", "unknown-key", "empty", "not-a-map"],
)
def test_malformed_environment_is_rejected(value: object) -> None:
    obj = _manifest(None).to_cbor_obj()
    obj["environment"] = value
    with pytest.raises(HeaderFieldError):
        Manifest.from_cbor_obj(obj)


def test_bundle_toml_environment_requirements() -> None:
    config = parse_bundle_toml(TOML + '[environment]\nrequirements = "deps/requirements.txt"\n')
    assert config.environment_requirements == "deps/requirements.txt"
    assert parse_bundle_toml(TOML).environment_requirements is None


@pytest.mark.parametrize(
    "table",
    [
        'requirements = "/etc/passwd"',
        'requirements = "../x.txt"',
        "requirements = 1",
        "lock = 1",
        "",
    ],
    ids=["absolute", "dotdot", "not-text", "unknown-key", "missing"],
)
def test_bad_bundle_toml_environment_is_rejected(table: str) -> None:
    with pytest.raises(ManifestConfigError):
        parse_bundle_toml(TOML + f"[environment]\n{table}\n")
