# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""toolchain/build.py: cache keys, atomic placement, current.json; the kernel config check."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


build = _load("nb_toolchain_build", REPO / "toolchain" / "build.py")
check_config = _load("nb_toolchain_check_config", REPO / "toolchain" / "kernel" / "check_config.py")


def _tree(tmp_path: Path) -> Path:
    """A toy toolchain/ directory with a kernel component."""
    root = tmp_path / "toolchain"
    (root / "kernel").mkdir(parents=True)
    (root / "builder").mkdir()
    (root / "in-builder.sh").write_text("#!/bin/sh\n")
    (root / "builder" / "packages.txt").write_text("python3\n")
    (root / "kernel" / "build.sh").write_text("#!/bin/sh\necho kernel\n")
    (root / "kernel" / "nitro-enclave.config").write_text("CONFIG_NSM=y\n")
    (root / "kernel" / "cmdline").write_text("console=ttyS0\n")
    return root


def _keys(root: Path) -> dict[str, str]:
    return {c.name: c.key for c in build.plan(root, ["kernel", "blobs"])}


# --- cache keys ---------------------------------------------------------------------------


def test_key_is_16_hex_and_stable(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    first = _keys(root)
    assert all(len(k) == 16 and int(k, 16) >= 0 for k in first.values())
    assert _keys(root) == first


def test_changed_input_changes_the_key(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = _keys(root)
    (root / "kernel" / "nitro-enclave.config").write_text("CONFIG_NSM=m\n")
    after = _keys(root)
    assert after["kernel"] != before["kernel"]
    assert after["blobs"] != before["blobs"], "blobs must follow the kernel's key"


def test_changed_builder_packages_change_compiled_components(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = _keys(root)
    (root / "builder" / "packages.txt").write_text("python3\ngcc\n")
    after = _keys(root)
    assert after["builder"] != before["builder"]
    assert after["kernel"] != before["kernel"]


def test_new_file_in_component_changes_the_key(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = _keys(root)
    (root / "kernel" / "extra.patch").write_text("--- a\n+++ b\n")
    assert _keys(root)["kernel"] != before["kernel"]


def test_executable_bit_counts(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = _keys(root)
    (root / "kernel" / "build.sh").chmod(0o755)
    assert _keys(root)["kernel"] != before["kernel"]


def test_cmdline_changes_blobs_not_kernel(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = _keys(root)
    (root / "kernel" / "cmdline").write_text("console=ttyS0 panic=1\n")
    after = _keys(root)
    assert after["kernel"] == before["kernel"]
    assert after["blobs"] != before["blobs"]


def test_mtime_and_location_do_not_count(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    before = _keys(root)
    os.utime(root / "kernel" / "build.sh", (1, 1))
    other = _tree(tmp_path / "b")
    assert _keys(root) == before
    assert _keys(other) == before


def test_sample_app_requirements_key_the_rootfs(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "rootfs").mkdir()
    (root / "rootfs" / "build.sh").write_text("#!/bin/sh\n")
    app = tmp_path / "examples" / "ml_app"
    app.mkdir(parents=True)
    (app / "requirements.txt").write_text("numpy==1 --hash=sha256:00\n")
    before = {c.name: c.key for c in build.plan(root, ["rootfs", "kernel"])}
    assert app / "requirements.txt" in build.input_files(root, "rootfs")
    (app / "requirements.txt").write_text("numpy==2 --hash=sha256:00\n")
    after = {c.name: c.key for c in build.plan(root, ["rootfs", "kernel"])}
    assert after["rootfs"] != before["rootfs"]
    assert after["kernel"] == before["kernel"]


def test_only_pulls_in_dependencies() -> None:
    assert build.closure(["blobs"]) == ["builder", "kernel", "init", "blobs"]
    assert build.closure(["rootfs"]) == ["rootfs"]


def test_cache_dir_defaults() -> None:
    assert build.default_cache({"NB_CACHE_DIR": "/c"}) == Path("/c")
    assert build.default_cache({"XDG_CACHE_HOME": "/x"}) == Path("/x/nitro-bundles")
    assert build.default_cache({"HOME": "/h"}) == Path("/h/.cache/nitro-bundles")


# --- atomic placement -----------------------------------------------------------------------


def test_successful_build_is_renamed_into_place(tmp_path: Path) -> None:
    final = tmp_path / "kernel-0123456789abcdef"

    def make(out: Path) -> None:
        assert out != final
        assert out.parent == final.parent
        (out / "bzImage").write_bytes(b"k")

    build.build_atomically(final, make)
    assert (final / "bzImage").read_bytes() == b"k"
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]


@pytest.mark.parametrize("error", [RuntimeError("compile failed"), KeyboardInterrupt()])
def test_interrupted_build_leaves_no_component(tmp_path: Path, error: BaseException) -> None:
    final = tmp_path / "kernel-0123456789abcdef"

    def make(out: Path) -> None:
        (out / "half").write_bytes(b"x")
        raise error

    with pytest.raises(type(error)):
        build.build_atomically(final, make)
    assert list(tmp_path.iterdir()) == []


def test_failed_script_names_component_and_log(tmp_path: Path) -> None:
    log = tmp_path / "kernel-k.log"
    cmd = ["sh", "-c", "echo '[kernel] step one'; echo noise; echo oops >&2; exit 3"]
    with pytest.raises(
        build.ToolchainError, match=r"kernel failed \(exit 3\); see .*kernel-k\.log"
    ):
        build.run_logged(cmd, log, "kernel", build.Progress())
    text = log.read_text()
    assert "noise" in text
    assert "oops" in text


def test_only_progress_lines_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmd = ["sh", "-c", "echo '[kernel] compiling'; echo 'CC kernel/fork.o'"]
    build.run_logged(cmd, tmp_path / "k.log", "kernel", build.Progress())
    err = capsys.readouterr().err
    assert "[kernel] compiling" in err
    assert "fork.o" not in err


# --- current.json ---------------------------------------------------------------------------


def test_json_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "current.json"
    build.write_json_atomic(path, {"kernel": {"dir": "/a"}})
    build.write_json_atomic(path, {"kernel": {"dir": "/b"}})
    assert json.loads(path.read_text()) == {"kernel": {"dir": "/b"}}
    assert [p.name for p in tmp_path.iterdir()] == ["current.json"]


def test_json_failure_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "current.json"
    build.write_json_atomic(path, {"kernel": {"dir": "/a"}})
    with pytest.raises(TypeError):
        build.write_json_atomic(path, {"kernel": object()})
    assert json.loads(path.read_text()) == {"kernel": {"dir": "/a"}}
    assert [p.name for p in tmp_path.iterdir()] == ["current.json"]


def test_current_json_merges_and_drops_vanished(tmp_path: Path) -> None:
    run = build.Run(tmp_path, build.Progress(), {})
    run.root.mkdir()
    kept = tmp_path / "toolchain" / "rootfs-1"
    kept.mkdir()
    old = {"rootfs": {"dir": str(kept)}, "init": {"dir": str(tmp_path / "gone")}}
    (run.root / "current.json").write_text(json.dumps(old))
    qemu = run.root / "qemu-2"
    run.dirs["qemu"] = qemu
    current = build.write_current(run)
    assert current == {
        "rootfs": {"dir": str(kept)},
        "qemu": {"dir": str(qemu), "bin": str(qemu / "bin" / "qemu-system-x86_64")},
    }
    assert json.loads((run.root / "current.json").read_text()) == current


def test_blobs_layout(tmp_path: Path) -> None:
    kernel, init, out = tmp_path / "k", tmp_path / "i", tmp_path / "o"
    for d in (kernel, init, out):
        d.mkdir()
    (kernel / "bzImage").write_bytes(b"kernel")
    (kernel / "bzImage.config").write_bytes(b"CONFIG_NSM=y\n")
    (init / "init").write_bytes(b"\x7fELF")
    (tmp_path / "cmdline").write_bytes(b"console=ttyS0\n\n")
    build.assemble_blobs(kernel, init, tmp_path / "cmdline", out)
    assert sorted(p.name for p in out.iterdir()) == [
        "bzImage",
        "bzImage.config",
        "cmdline",
        "init",
        "nsm.ko",
    ]
    assert (out / "cmdline").read_bytes() == b"console=ttyS0\n"
    # Empty: our init then skips finit_module (the driver is built in).
    assert (out / "nsm.ko").read_bytes() == b""
    assert os.access(out / "init", os.X_OK)


# --- the kernel fragment check ----------------------------------------------------------------


def test_fragment_satisfied() -> None:
    fragment = "CONFIG_NSM=y\n# CONFIG_ACPI is not set\nCONFIG_NR_CPUS=8\n"
    config = "CONFIG_NSM=y\nCONFIG_NR_CPUS=8\n# CONFIG_MODULES is not set\n"
    assert check_config.check_kconfig(fragment, config) == []


def test_dropped_option_is_reported() -> None:
    # olddefconfig drops an option whose dependencies are off: it is absent, not "n".
    problems = check_config.check_kconfig("CONFIG_NSM=y\n", "CONFIG_VIRTIO=y\n")
    assert problems == ["CONFIG_NSM: asked y, got n (absent)"]


def test_wrong_value_is_reported() -> None:
    problems = check_config.check_kconfig("CONFIG_NSM=y\n", "CONFIG_NSM=m\n")
    assert problems == ["CONFIG_NSM: asked y, got m"]


def test_option_asked_off_but_on_is_reported() -> None:
    problems = check_config.check_kconfig("# CONFIG_ACPI is not set\n", "CONFIG_ACPI=y\n")
    assert problems == ["CONFIG_ACPI: asked n, got y"]


def test_repository_fragment_parses_and_covers_the_machine() -> None:
    fragment = (REPO / "toolchain" / "kernel" / "nitro-enclave.config").read_text()
    options = check_config.parse_kconfig(fragment)
    for needed in ("CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES", "CONFIG_NSM", "CONFIG_VIRTIO_VSOCKETS"):
        assert options[needed] == "y"


def test_check_script_exit_codes(tmp_path: Path) -> None:
    frag, good, bad = tmp_path / "f", tmp_path / "g", tmp_path / "b"
    frag.write_text("CONFIG_NSM=y\n")
    good.write_text("CONFIG_NSM=y\n")
    bad.write_text("CONFIG_NSM=m\n")
    assert check_config.main([str(frag), str(good)]) == 0
    assert check_config.main([str(frag), str(bad)]) == 1
    assert check_config.main([str(frag)]) == 2


# --- a run over a toy toolchain (no network, no root tools) -------------------------------


def _toy_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_script: str):
    root = _tree(tmp_path)
    (root / "kernel" / "build.sh").write_text(kernel_script)
    (root / "kernel" / "build.sh").chmod(0o755)
    monkeypatch.setattr(build.os, "geteuid", lambda: 0)
    run = build.Run(tmp_path / "cache", build.Progress(), {}, root)
    run.root.mkdir(parents=True)
    (run.root / "logs").mkdir()
    comps = build.plan(root, ["blobs"])
    # The builder is already cached: nothing runs mmdebstrap.
    (run.root / comps[0].dirname).mkdir()
    return run, comps


def test_run_builds_kernel_and_skips_what_has_no_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = '#!/bin/sh\necho "[kernel] making"\necho k > "$2/bzImage"\n'
    run, comps = _toy_run(tmp_path, monkeypatch, script)
    build.build_all(run, comps)
    kernel = run.root / next(c.dirname for c in comps if c.name == "kernel")
    assert (kernel / "bzImage").read_text() == "k\n"
    assert set(run.dirs) == {"builder", "kernel"}
    err = capsys.readouterr().err
    assert "[kernel] making" in err
    assert "init: skipped, toolchain/init/build.sh does not exist yet" in err
    assert "blobs: skipped, needs init" in err
    # Warm: everything present is reused, nothing runs.
    (kernel / "bzImage").write_text("cached\n")
    build.build_all(build.Run(run.cache, build.Progress(), {}, run.toolchain), comps)
    assert (kernel / "bzImage").read_text() == "cached\n"


def test_failing_component_leaves_nothing_and_names_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = '#!/bin/sh\necho half > "$2/bzImage"\necho "no compiler" >&2\nexit 1\n'
    run, comps = _toy_run(tmp_path, monkeypatch, script)
    key = next(c.key for c in comps if c.name == "kernel")
    with pytest.raises(
        build.ToolchainError, match=rf"kernel failed \(exit 1\); see .*kernel-{key}"
    ):
        build.build_all(run, comps)
    assert sorted(p.name for p in run.root.iterdir()) == ["builder-" + comps[0].key, "logs"]
    assert "no compiler" in (run.root / "logs" / f"kernel-{key}.log").read_text()
