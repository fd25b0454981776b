# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`enclave start --backend qemu` when QEMU is missing or broken (specs/qemu-backend.md §4).

No boot needed: a missing QEMU, and a "QEMU" that dies at once, each give one stderr line
naming what failed and where its log is, exit 1, and leave no process or socket behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enclave.nsm.simulator import create_sim_pki
from owner_tools._cli import main as owner_main
from user_runtime._cli import main

REPO = Path(__file__).resolve().parents[3]
BLOBS = REPO / "examples" / "dev-blobs" / "x86_64"


@pytest.fixture(scope="module")
def eif(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("image")
    assert owner_main(["keygen", "-o", str(work / "owner")]) == 0
    out = work / "app.eif"
    args = ["build-eif", "-o", str(out), "--blobs", str(BLOBS), "--owner-key"]
    assert owner_main([*args, str(work / "owner.pub")]) == 0
    return out


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    create_sim_pki(tmp_path / "pki")
    monkeypatch.setenv("NB_SIM_PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.delenv("AWS_ENDPOINT_URL_KMS", raising=False)
    monkeypatch.setenv("NB_QEMU_ACCEL", "tcg")
    return tmp_path / "state"


def _left_behind(state: Path) -> list[str]:
    enclave = state / "enclave"
    return sorted(
        p.name for p in enclave.glob("*") if p.name.endswith(".sock") or "sock_" in p.name
    )


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def test_missing_qemu_is_one_line_naming_the_toolchain(eif, state, capsys, monkeypatch) -> None:
    monkeypatch.setenv("NB_QEMU", str(state.parent / "no-such-qemu"))
    argv = ["enclave", "start", "--eif", str(eif), "--backend", "qemu"]
    assert main([*argv, "--state-dir", str(state)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "NB_QEMU" in err[0]
    assert not (state / "enclave" / "state.json").exists()


def test_qemu_that_dies_at_start_is_one_line_and_leaves_nothing(
    eif, state, capsys, monkeypatch, tmp_path
) -> None:
    broken = tmp_path / "qemu-system-x86_64"
    broken.write_text("#!/bin/sh\necho 'qemu: something is broken' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("NB_QEMU", str(broken))
    argv = ["enclave", "start", "--eif", str(eif), "--backend", "qemu"]
    assert main([*argv, "--state-dir", str(state)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "qemu exited" in err[0]
    assert "qemu: something is broken" in err[0]
    assert "console.log" in err[0]
    assert _left_behind(state) == []
    assert not (state / "enclave" / "state.json").exists()
    # the helpers (vsock back-end, heartbeat) are gone too
    for line in (state / "enclave" / "vsock.log").read_text().splitlines():
        assert "Traceback" not in line
    assert main(["enclave", "status", "--state-dir", str(state)]) == 1
    assert json.loads(capsys.readouterr().out) == {"running": False}


def test_backend_name_is_checked(eif, state, capsys) -> None:
    argv = ["enclave", "start", "--eif", str(eif), "--backend", "vmware"]
    assert main([*argv, "--state-dir", str(state)]) in {1, 2}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--backend" in err[0]
    assert not (state / "enclave" / "state.json").exists()
