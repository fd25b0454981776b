# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What the client remembers between pulls: per owner key, the newest index seen per name.

specs/distribution.md §5. One JSON file per owner key, `<state dir>/<key id>.json`:
`{"indexes": {"NAME": {"sha256": "<hex>", "version": N}}}`. It is written atomically
(temporary file, fsync, rename) under an exclusive lock, and a file that does not
parse is an error, never silently reset: a reset would let an old index back in.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from user_runtime.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

STATE_DIR_ENV = "NB_STATE_DIR"
_KEYID_RE = re.compile(r"[0-9a-f]{64}")
_DIGEST_RE = _KEYID_RE
_MAX_STATE_BYTES = 16 * 1024 * 1024


class TrustStateError(InputError):
    """The stored trust state is unreadable or corrupt."""


@dataclass(frozen=True)
class TrustedIndex:
    """The newest index accepted for one name: its version and SHA-256 as stored."""

    version: int
    sha256: str


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Return `$NB_STATE_DIR`, else `$XDG_STATE_HOME/nitro-bundles`, else ~/.local/state/..."""
    env = os.environ if env is None else env
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "nitro-bundles"


class TrustState:
    """The state file of one owner key; `update` reads, checks and writes under a lock."""

    def __init__(self, state_dir: Path, owner_key_id: str) -> None:
        if not _KEYID_RE.fullmatch(owner_key_id):
            raise TrustStateError("owner key id must be 64 lowercase hex digits")
        self.state_dir = state_dir
        self.path = state_dir / f"{owner_key_id}.json"

    def get(self, name: str) -> TrustedIndex | None:
        """Return what was last accepted for `name`, or None if nothing was."""
        return self._read().get(name)

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, TrustedIndex]]:
        """Hold the lock; yield the state as a dict; write it back if the block succeeds."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                state = self._read()
                before = dict(state)
                yield state
                if state != before:
                    self._write(state)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read(self) -> dict[str, TrustedIndex]:
        try:
            with self.path.open("rb") as fh:
                data = fh.read(_MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise TrustStateError(f"{self.path}: cannot read trust state ({e.strerror})") from e
        if len(data) > _MAX_STATE_BYTES:
            raise TrustStateError(f"{self.path}: trust state file is too large")
        try:
            obj = json.loads(data)
            return {
                str(name): _entry(value)
                for name, value in obj["indexes"].items()
                if isinstance(name, str)
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TrustStateError(
                f"{self.path}: trust state is corrupt; refusing to continue (remove it only if "
                "you trust the repository)"
            ) from None

    def _write(self, state: Mapping[str, TrustedIndex]) -> None:
        obj = {
            "indexes": {
                name: {"sha256": t.sha256, "version": t.version}
                for name, t in sorted(state.items())
            }
        }
        data = json.dumps(obj, sort_keys=True, indent=1).encode() + b"\n"
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.state_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _entry(value: object) -> TrustedIndex:
    if not isinstance(value, dict):
        raise TypeError
    version, digest = value["version"], value["sha256"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise ValueError
    return TrustedIndex(version=version, sha256=digest)
