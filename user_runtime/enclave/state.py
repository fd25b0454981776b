# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Where `enclave start` keeps its state (no heavy imports: `run` reads it on every call)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

STATE_ENV = "NB_STATE_DIR"
DEFAULT_STATE_DIR = ".nitro-bundles-local"
ENCLAVE_SUBDIR = "enclave"
STATE_FILE = "state.json"


def resolve_state_dir(state_dir: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """`--state-dir`, else `$NB_STATE_DIR`, else `./.nitro-bundles-local`; enclave files below."""
    from pathlib import Path  # noqa: PLC0415 - `run` starts without pathlib (state_dir_path)

    return Path(state_dir_path(state_dir, environ))


def state_dir_path(
    state_dir: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> str:
    """`resolve_state_dir` as text, for `run`'s lean start (no pathlib: ~8 ms)."""
    env = os.environ if environ is None else environ
    base = os.fspath(state_dir) if state_dir else (env.get(STATE_ENV) or DEFAULT_STATE_DIR)
    return os.path.join(os.path.abspath(base), ENCLAVE_SUBDIR)
