# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Manifest, path and bundle.toml rules (specs/bundle-format.md §5)."""

from __future__ import annotations

import pytest

from package_format.bundle.config import parse_bundle_toml
from package_format.bundle.errors import (
    BundleExpiredError,
    BundleLimitError,
    BundleNotYetValidError,
    HeaderFieldError,
    ManifestConfigError,
    UnsafePathError,
)
from package_format.bundle.manifest import Entrypoint, EnvPolicy, FileEntry, Manifest, OutputPolicy
from package_format.bundle.paths import check_path
from package_format.bundle.reader import check_validity

GOOD_FILES = (FileEntry("a", 0, 0o755, "dir"), FileEntry("a/m.py", 5, 0o644))


def make(**kw: object) -> Manifest:
    args: dict[str, object] = {
        "name": "app",
        "version": "1.0.0",
        "created": 0,
        "entrypoints": (Entrypoint("m", "a/m.py"),),
        "output": OutputPolicy(),
        "files": GOOD_FILES,
    }
    args.update(kw)
    return Manifest(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "a/../b",
        "/etc/passwd",
        "a//b",
        "a/./b",
        ".",
        "a/",
        "",
        "a\\b",
        "a\x00b",
        "a\nb",
        "e\u0301",
    ],
    ids=[
        "dotdot",
        "inner-dotdot",
        "absolute",
        "empty-component",
        "dot",
        "only-dot",
        "trailing-slash",
        "empty",
        "backslash",
        "nul",
        "newline",
        "not-nfc",
    ],
)
def test_unsafe_path_rejected(path: str) -> None:
    with pytest.raises(UnsafePathError):
        check_path(path, "test")


def test_overlong_path_rejected() -> None:
    with pytest.raises(BundleLimitError):
        check_path("a/" * 600 + "b", "test")
    with pytest.raises(BundleLimitError):
        check_path("x" * 256, "test")


def test_nfc_path_accepted() -> None:
    assert check_path("caf\u00e9/r\u00e9sum\u00e9.txt", "test") == "caf\u00e9/r\u00e9sum\u00e9.txt"


def test_duplicate_file_rejected() -> None:
    with pytest.raises(UnsafePathError):
        make(files=(*GOOD_FILES, FileEntry("a/m.py", 5, 0o644)))


def test_file_table_out_of_order_rejected() -> None:
    with pytest.raises(UnsafePathError):
        make(files=(FileEntry("b", 1, 0o644), *GOOD_FILES))


def test_file_without_parent_dir_rejected() -> None:
    with pytest.raises(UnsafePathError):
        make(files=(FileEntry("a/m.py", 5, 0o644),))


def test_file_used_as_directory_rejected() -> None:
    files = (FileEntry("a", 1, 0o644), FileEntry("a/m.py", 5, 0o644))
    with pytest.raises(UnsafePathError):
        make(files=files)


@pytest.mark.parametrize("mode", [0o600, 0o777, 0o4755, 0o666])
def test_odd_file_mode_rejected(mode: int) -> None:
    with pytest.raises(HeaderFieldError):
        FileEntry("x", 1, mode)


def test_entrypoint_must_be_a_file_in_the_bundle() -> None:
    with pytest.raises(HeaderFieldError):
        make(entrypoints=(Entrypoint("m", "a/missing.py"),))
    with pytest.raises(HeaderFieldError):
        make(entrypoints=(Entrypoint("m", "a", runtime="exec"),))


def test_exec_entrypoint_needs_executable_mode() -> None:
    with pytest.raises(HeaderFieldError):
        make(entrypoints=(Entrypoint("m", "a/m.py", runtime="exec"),))


def test_bad_semver_rejected() -> None:
    for version in ["1.0", "01.0.0", "v1.0.0", "1.0.0-", ""]:
        with pytest.raises((HeaderFieldError, BundleLimitError)):
            make(version=version)


def test_expiry_before_start_rejected() -> None:
    with pytest.raises(HeaderFieldError):
        make(not_before=10, expires=10)


def test_validity_window() -> None:
    m = make(not_before=100, expires=200)
    with pytest.raises(BundleNotYetValidError):
        check_validity(m, 99)
    check_validity(m, 100)
    check_validity(m, 199)
    with pytest.raises(BundleExpiredError):
        check_validity(m, 200)


def test_manifest_round_trips_through_cbor_obj() -> None:
    m = make(not_before=1, expires=2)
    assert Manifest.from_cbor_obj(m.to_cbor_obj()) == m
    assert m.payload_size == 5


TOML = """
name = "breast-cancer"
version = "1.2.0-rc.1"
not_before = 2026-01-01T00:00:00Z
expires = 2027-01-01
exclude = ["*.pyc", "notes"]

[[entrypoints]]
path = "ml_algorithm.py"

[[entrypoints]]
name = "train"
path = "bin/train"
allow_args = false

[output]
stdout = true
files = true
max_files_size = 1048576

[encryption_context]
team = "ml"
"""


def test_bundle_toml_parses() -> None:
    c = parse_bundle_toml(TOML)
    assert c.name == "breast-cancer"
    assert c.version == "1.2.0-rc.1"
    assert c.not_before == 1767225600
    assert c.expires == 1798761600
    assert c.exclude == ("*.pyc", "notes")
    assert c.entrypoints == (
        Entrypoint("ml_algorithm.py", "ml_algorithm.py", "python", True),
        Entrypoint("train", "bin/train", "exec", False),
    )
    assert c.output == OutputPolicy(stdout=True, stderr=False, files=True, max_files_size=1 << 20)
    assert c.encryption_context == {"team": "ml"}


@pytest.mark.parametrize(
    "text",
    [
        "name = ",
        'name = "Bad Name"',
        'nmae = "typo"',
        'version = "1"',
        "[[entrypoints]]\nname = 'x'",
        "[[entrypoints]]\npath = '../x.py'",
        "[output]\nstdout = 'yes'",
        "[output]\nfiles = false\nmax_files_size = 5",
        "expires = 2026-01-01T00:00:00",
        "[encryption_context]\nn = 1",
    ],
    ids=[
        "syntax",
        "bad-name",
        "unknown-key",
        "bad-version",
        "entry-no-path",
        "entry-dotdot",
        "output-type",
        "output-cap-without-files",
        "naive-datetime",
        "context-type",
    ],
)
def test_bad_bundle_toml_rejected(text: str) -> None:
    with pytest.raises(ManifestConfigError) as info:
        parse_bundle_toml(text)
    assert "\n" not in str(info.value)


def test_run_ceiling_round_trips_and_is_optional() -> None:
    ceiling = make(max_run_seconds=3600)
    assert ceiling.to_cbor_obj()["max_run_seconds"] == 3600
    assert Manifest.from_cbor_obj(ceiling.to_cbor_obj()) == ceiling
    assert "max_run_seconds" not in make().to_cbor_obj()  # older bundles: byte-identical
    assert Manifest.from_cbor_obj(make().to_cbor_obj()).max_run_seconds is None


@pytest.mark.parametrize("value", [0, 2**31 + 1])
def test_run_ceiling_out_of_range_rejected(value: int) -> None:
    with pytest.raises(HeaderFieldError):
        make(max_run_seconds=value)
    obj = make().to_cbor_obj()
    obj["max_run_seconds"] = value
    with pytest.raises(HeaderFieldError):
        Manifest.from_cbor_obj(obj)


def test_bundle_toml_run_table_sets_the_ceiling() -> None:
    assert parse_bundle_toml("[run]\nmax_seconds = 90\n").max_run_seconds == 90
    assert parse_bundle_toml("").max_run_seconds is None
    for bad in ("[run]\nmax_seconds = 0\n", "[run]\nmax_seconds = '9'\n", "[run]\nx = 1\n"):
        with pytest.raises(ManifestConfigError):
            parse_bundle_toml(bad)


# -- env: the names a user may set, and the owner's defaults (§5, issue 21) -----------------


def test_env_policy_round_trips_and_is_optional() -> None:
    policy = EnvPolicy(("SEED", "N_ESTIMATORS"), (("N_ESTIMATORS", "100"),))
    manifest = make(env=policy)
    obj = manifest.to_cbor_obj()
    assert obj["env"] == {"allow": ["N_ESTIMATORS", "SEED"], "defaults": {"N_ESTIMATORS": "100"}}
    assert Manifest.from_cbor_obj(obj) == manifest
    assert "env" not in make().to_cbor_obj()  # older bundles: byte-identical
    assert Manifest.from_cbor_obj(make().to_cbor_obj()).env is None


@pytest.mark.parametrize(
    ("allow", "defaults"),
    [
        (("LD_PRELOAD",), ()),
        (("PYTHONPATH",), ()),
        (("PATH",), ()),
        (("LC_CTYPE",), ()),
        (("1BAD",), ()),
        (("A-B",), ()),
        (("SEED",), (("OTHER", "1"),)),
        (("SEED",), (("SEED", "a\x00b"),)),
    ],
    ids=[
        "ld-preload",
        "pythonpath",
        "path",
        "locale",
        "digit",
        "dash",
        "default-not-allowed",
        "nul",
    ],
)
def test_env_policy_refuses_reserved_or_bad_names(allow, defaults) -> None:
    with pytest.raises(HeaderFieldError):
        EnvPolicy(allow, defaults)


def test_bundle_toml_env_table() -> None:
    config = parse_bundle_toml('[env]\nallow = ["SEED", "N"]\n[env.defaults]\nN = "5"\n')
    assert config.env == EnvPolicy(("N", "SEED"), (("N", "5"),))
    assert parse_bundle_toml("").env is None
    for bad in ('[env]\nallow = ["LD_PRELOAD"]\n', "[env]\nallow = [1]\n", "[env]\nx = 1\n"):
        with pytest.raises(ManifestConfigError) as info:
            parse_bundle_toml(bad)
        assert "\n" not in str(info.value)


# -- module entrypoints: python -m (§5.2, issue 21) ----------------------------------------


def test_module_entrypoint_round_trips_and_is_optional() -> None:
    entry = Entrypoint(name="pkg.cli", path="pkg/cli.py", module="pkg.cli")
    assert entry.to_cbor_obj()["module"] == "pkg.cli"
    assert Entrypoint.from_cbor_obj(entry.to_cbor_obj(), "e") == entry
    assert "module" not in Entrypoint(name="a.py", path="a.py").to_cbor_obj()


@pytest.mark.parametrize(
    ("module", "path", "runtime"),
    [
        ("pkg.cli", "pkg/other.py", "python"),
        ("pkg..cli", "pkg//cli.py", "python"),
        ("pkg.cli", "pkg/cli.py", "exec"),
        ("1pkg", "1pkg.py", "python"),
    ],
    ids=["other-file", "bad-name", "exec", "digit"],
)
def test_module_entrypoint_must_name_its_own_python_file(module, path, runtime) -> None:
    with pytest.raises((HeaderFieldError, UnsafePathError)):
        Entrypoint(name="e", path=path, runtime=runtime, module=module)


def test_bundle_toml_module_entrypoint_defaults_its_path_and_name() -> None:
    config = parse_bundle_toml('[[entrypoints]]\nmodule = "pkg.cli"\n')
    assert config.entrypoints == (Entrypoint(name="pkg.cli", path="pkg/cli.py", module="pkg.cli"),)
    package = parse_bundle_toml('[[entrypoints]]\nmodule = "pkg"\npath = "pkg/__main__.py"\n')
    assert package.entrypoints[0].path == "pkg/__main__.py"
