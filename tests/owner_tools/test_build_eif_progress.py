# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""build-eif's byte progress (specs/cli.md §1.1): counted in the library, drawn by the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from owner_tools._cli import main
from owner_tools.image import BuildOptions, build_eif, find_blobs
from package_format.eif import read_eif

REPO = Path(__file__).resolve().parents[2]
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"
WHEN = "2026-01-01T00:00:00+00:00"


@pytest.fixture
def owner_pub(tmp_path) -> Path:
    from owner_tools.keys import keygen

    _, pub = keygen(tmp_path / "owner")
    return pub


def _opts(output: Path, owner_pub: Path) -> BuildOptions:
    from owner_tools.keys import load_owner_key

    return BuildOptions(
        output=output,
        blobs=find_blobs(BLOBS, "x86_64"),
        owner_keys=[load_owner_key(owner_pub)],
        build_time=WHEN,
    )


def test_progress_counts_every_section_byte_and_changes_no_byte(tmp_path, owner_pub):
    seen: list[tuple[int, int]] = []
    quiet = build_eif(_opts(tmp_path / "a.eif", owner_pub))
    counted = build_eif(
        _opts(tmp_path / "b.eif", owner_pub), progress=lambda d, t: seen.append((d, t))
    )
    assert (tmp_path / "a.eif").read_bytes() == (tmp_path / "b.eif").read_bytes()
    assert counted.measurements == quiet.measurements
    with (tmp_path / "b.eif").open("rb") as f:
        image = read_eif(f)
    total = sum(s.size for s in image.sections)
    assert seen[-1] == (total, total)
    assert all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def _argv(tmp_path: Path, owner_pub: Path) -> list[str]:
    out = tmp_path / "x.eif"
    return ["build-eif", "-o", str(out), "--blobs", str(BLOBS), "--owner-key", str(owner_pub)]


def test_a_terminal_sees_the_write_bar(tmp_path, owner_pub, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*_argv(tmp_path, owner_pub), "--build-time", WHEN]) == 0
    assert "writing x.eif" in capsys.readouterr().err


def test_quiet_or_no_terminal_draws_no_bar(tmp_path, owner_pub, capsys, monkeypatch):
    assert main([*_argv(tmp_path, owner_pub), "--build-time", WHEN]) == 0
    assert "writing" not in capsys.readouterr().err  # not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*_argv(tmp_path, owner_pub), "--build-time", WHEN, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "writing" not in err
    assert '"PCR0"' in out  # the measurements still print
