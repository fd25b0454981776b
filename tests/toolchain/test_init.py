# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The enclave's init without booting it (specs/enclave-image.md §13.6).

init.c compiled with -DNB_INIT_TEST runs its own /env and /cmd parsers, its heartbeat client
(over a Unix socket instead of vsock) and its supervisor; failures are exit codes (§13.5).
The real init is compiled with the same command (toolchain/init/compile.sh) and checked to be a
static ELF, byte for byte reproducible.
"""

from __future__ import annotations

import enum
import shutil
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INIT_DIR = REPO / "toolchain" / "init"
MAX_BYTES = 65536  # §13.3
MAX_ITEMS = 1024
HEARTBEAT = 0xB7
GUARD = 60  # seconds: a hung binary fails the test instead of hanging it (never asserted)


class Fail(enum.IntEnum):
    """init's failure classes (§13.5), the exit codes of the test build."""

    SYSTEM = 10
    LIST_MISSING = 11
    LIST_TOO_BIG = 12
    LIST_FORMAT = 13
    CMD_EMPTY = 14
    HB_CONNECT = 20
    HB_TIMEOUT = 21
    HB_CLOSED = 22
    HB_WRONG = 23


def _compile(out: Path, *flags: str) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: init.c cannot be compiled")
    subprocess.run(
        ["sh", str(INIT_DIR / "compile.sh"), str(INIT_DIR / "init.c"), str(out), *flags],
        check=True,
        timeout=300,
    )
    return out


@pytest.fixture(scope="session")
def init_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile(tmp_path_factory.mktemp("init") / "init-test", "-DNB_INIT_TEST")


@pytest.fixture
def run(init_test: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def _run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(init_test), *args], capture_output=True, text=True, timeout=GUARD, check=False
        )

    return _run


def _file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# §13.3: /env and /cmd.


@pytest.mark.parametrize(
    ("data", "items"),
    [
        (b"PATH=/bin\nA=1\n", ["PATH=/bin", "A=1"]),
        (b"\nA=1\n\n\nB=x=y\n", ["A=1", "B=x=y"]),
        (b"A=\n", ["A="]),
        (b"", []),
        (b"\n\n", []),
    ],
    ids=["plain", "empty-lines-skipped", "empty-value", "empty-file", "only-empty-lines"],
)
def test_env_parsed(run, tmp_path: Path, data: bytes, items: list[str]) -> None:
    result = run("env", _file(tmp_path, "env", data))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == items


@pytest.mark.parametrize(
    ("data", "items"),
    [
        (b"python3\n-m\nenclave\n", ["python3", "-m", "enclave"]),
        (b"sh\n\nx y\n", ["sh", "", "x y"]),
    ],
    ids=["words", "empty-argument-kept"],
)
def test_cmd_parsed(run, tmp_path: Path, data: bytes, items: list[str]) -> None:
    result = run("cmd", _file(tmp_path, "cmd", data))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == items


@pytest.mark.parametrize(
    "data", [b"", b"\n", b"\nsh\n"], ids=["empty", "empty-line", "empty-argv0"]
)
def test_cmd_without_command_refused(run, tmp_path: Path, data: bytes) -> None:
    result = run("cmd", _file(tmp_path, "cmd", data))
    assert result.returncode == Fail.CMD_EMPTY


@pytest.mark.parametrize("kind", ["env", "cmd"])
def test_missing_file_refused(run, tmp_path: Path, kind: str) -> None:
    assert run(kind, str(tmp_path / "absent")).returncode == Fail.LIST_MISSING


@pytest.mark.parametrize(
    ("kind", "data", "code"),
    [
        ("env", b"A=1", Fail.LIST_FORMAT),
        ("cmd", b"sh", Fail.LIST_FORMAT),
        ("env", b"A=1\0B=2\n", Fail.LIST_FORMAT),
        ("cmd", b"sh\n-c\0x\n", Fail.LIST_FORMAT),
        ("env", b"NOEQUALS\n", Fail.LIST_FORMAT),
        ("env", b"=value\n", Fail.LIST_FORMAT),
    ],
    ids=[
        "env-no-final-newline",
        "cmd-no-final-newline",
        "env-nul-byte",
        "cmd-nul-byte",
        "env-line-without-equals",
        "env-empty-name",
    ],
)
def test_malformed_list_refused(run, tmp_path: Path, kind: str, data: bytes, code: Fail) -> None:
    assert run(kind, _file(tmp_path, kind, data)).returncode == code


def _sized(total: int) -> bytes:
    """One `A=xxx…\\n` line of exactly TOTAL bytes."""
    return b"A=" + b"x" * (total - 3) + b"\n"


@pytest.mark.parametrize("kind", ["env", "cmd"])
def test_list_at_byte_limit_accepted(run, tmp_path: Path, kind: str) -> None:
    result = run(kind, _file(tmp_path, kind, _sized(MAX_BYTES)))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == MAX_BYTES


@pytest.mark.parametrize("kind", ["env", "cmd"])
def test_list_over_byte_limit_refused(run, tmp_path: Path, kind: str) -> None:
    assert run(kind, _file(tmp_path, kind, _sized(MAX_BYTES + 1))).returncode == Fail.LIST_TOO_BIG


@pytest.mark.parametrize("kind", ["env", "cmd"])
def test_list_at_item_limit_accepted(run, tmp_path: Path, kind: str) -> None:
    result = run(kind, _file(tmp_path, kind, b"A=1\n" * MAX_ITEMS))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == MAX_ITEMS


@pytest.mark.parametrize("kind", ["env", "cmd"])
def test_list_over_item_limit_refused(run, tmp_path: Path, kind: str) -> None:
    data = b"A=1\n" * (MAX_ITEMS + 1)
    assert run(kind, _file(tmp_path, kind, data)).returncode == Fail.LIST_TOO_BIG


# §13.4: the heartbeat.


class Peer:
    """A one-connection Unix socket server playing the parent's side of the heartbeat."""

    def __init__(self, path: Path, answer: bytes | None) -> None:
        self.path = path
        self.answer = answer  # None: close without answering; b"": never answer
        self.received = b""
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._server.accept()
        with conn:
            self.received = conn.recv(1)
            if self.answer is None:
                return
            if self.answer:
                conn.sendall(self.answer)
            while conn.recv(1):  # hold the connection until the client leaves
                pass

    def close(self) -> None:
        self._thread.join(timeout=GUARD)
        self._server.close()


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Callable[[bytes | None], Peer]]:
    peers: list[Peer] = []

    def _start(answer: bytes | None) -> Peer:
        peers.append(Peer(tmp_path / f"hb{len(peers)}.sock", answer))
        return peers[-1]

    yield _start
    for p in peers:
        p.close()


def test_heartbeat_ok(run, peer) -> None:
    p = peer(bytes([HEARTBEAT]))
    result = run("heartbeat", str(p.path), "30000")
    assert result.returncode == 0, result.stderr
    p.close()
    assert p.received == bytes([HEARTBEAT])


def test_heartbeat_wrong_byte_fails(run, peer) -> None:
    p = peer(b"\x00")
    assert run("heartbeat", str(p.path), "30000").returncode == Fail.HB_WRONG


def test_heartbeat_peer_closes_fails(run, peer) -> None:
    p = peer(None)
    assert run("heartbeat", str(p.path), "30000").returncode == Fail.HB_CLOSED


def test_heartbeat_no_peer_fails(run, tmp_path: Path) -> None:
    assert run("heartbeat", str(tmp_path / "nobody.sock"), "30000").returncode == Fail.HB_CONNECT


def test_heartbeat_peer_not_listening_fails(run, tmp_path: Path) -> None:
    path = tmp_path / "closed.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))  # bound, never listening: connection refused
        assert run("heartbeat", str(path), "30000").returncode == Fail.HB_CONNECT


def test_heartbeat_silent_peer_times_out(run, peer) -> None:
    p = peer(b"")
    result = run("heartbeat", str(p.path), "200")
    assert result.returncode == Fail.HB_TIMEOUT


# §13.2 steps 9-10: the command and PID 1's loop.


def _lists(tmp_path: Path, env: bytes, cmd: bytes) -> tuple[str, str]:
    return _file(tmp_path, "env", env), _file(tmp_path, "cmd", cmd)


def test_command_sees_only_env_file(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NB_LEAK", "1")
    result = run("run", *_lists(tmp_path, b"PATH=/usr/bin:/bin\nA=1\nA=2\n", b"env\n"))
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["A=2", "PATH=/usr/bin:/bin"]


def test_command_found_on_env_path(run, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "nb-hello"
    tool.write_text('#!/bin/sh\necho hello "$1"\n')
    tool.chmod(0o755)
    env = f"PATH={bindir}:/usr/bin:/bin\n".encode()
    result = run("run", *_lists(tmp_path, env, b"nb-hello\nworld\n"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello world\n"


def test_command_exit_status_reported(run, tmp_path: Path) -> None:
    result = run("run", *_lists(tmp_path, b"PATH=/bin:/usr/bin\n", b"sh\n-c\nexit 3\n"))
    assert result.returncode == 3
    assert "command exited with status 3" in result.stderr


def test_command_killed_reported(run, tmp_path: Path) -> None:
    result = run("run", *_lists(tmp_path, b"PATH=/bin:/usr/bin\n", b"sh\n-c\nkill -9 $$\n"))
    assert result.returncode == 128 + signal.SIGKILL
    assert "killed by signal 9" in result.stderr


def test_command_not_found(run, tmp_path: Path) -> None:
    result = run("run", *_lists(tmp_path, b"PATH=/nonexistent\n", b"sh\n"))
    assert result.returncode == 127


def test_orphan_exit_is_not_the_command_exit(run, tmp_path: Path) -> None:
    # The orphan exits (status 5, reaped by the loop) before the command (status 4).
    flag = tmp_path / "orphan-done"
    script = (
        f'(sh -c "touch {flag}; exit 5" &); '
        f"while [ ! -e {flag} ]; do sleep 0.01; done; sleep 0.1; exit 4"
    )
    result = run("run", *_lists(tmp_path, b"PATH=/bin:/usr/bin\n", f"sh\n-c\n{script}\n".encode()))
    assert result.returncode == 4, result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_signal_forwarded_as_sigterm(init_test: Path, tmp_path: Path, sig: signal.Signals) -> None:
    # The command exits 7 on SIGTERM only: another signal (or none) gives another status.
    script = 'trap "exit 7" TERM; trap "exit 8" INT; echo up; while :; do sleep 1; done'
    env, cmd = _lists(tmp_path, b"PATH=/bin:/usr/bin\n", f"sh\n-c\n{script}\n".encode())
    with subprocess.Popen(
        [str(init_test), "run", env, cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "up\n"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=GUARD)
    assert proc.returncode == 7, stderr
    assert "sending SIGTERM" in stderr


# §13.7: the real init, built the way build.sh builds it.

PT_INTERP = 3
PT_DYNAMIC = 2


def _program_header_types(elf: bytes) -> list[int]:
    assert elf[:4] == b"\x7fELF"
    assert elf[4] == 2  # ELFCLASS64
    assert elf[5] == 1  # little endian
    (e_type,) = struct.unpack_from("<H", elf, 16)
    assert e_type == 2  # ET_EXEC: not a PIE, nothing to relocate at start
    (e_phoff,) = struct.unpack_from("<Q", elf, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", elf, 54)
    return [struct.unpack_from("<I", elf, e_phoff + i * e_phentsize)[0] for i in range(e_phnum)]


@pytest.fixture(scope="session")
def init_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    first = _compile(tmp_path_factory.mktemp("init-a") / "init")
    second = _compile(tmp_path_factory.mktemp("init-b") / "init")
    return first.read_bytes(), second.read_bytes()


def test_init_is_static(init_builds: tuple[bytes, bytes]) -> None:
    types = _program_header_types(init_builds[0])
    assert types, "no program headers"
    assert PT_INTERP not in types
    assert PT_DYNAMIC not in types


def test_init_build_is_reproducible(init_builds: tuple[bytes, bytes]) -> None:
    assert init_builds[0] == init_builds[1]


def test_build_script_refuses_missing_builder(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", str(INIT_DIR / "build.sh"), str(tmp_path / "no-builder"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
