# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Where `enclave start` keeps its state (no heavy imports: `run` reads it on every call)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

STATE_ENV = "NB_STATE_DIR"
DEFAULT_STATE_DIR = ".nitro-bundles-local"
ENCLAVE_SUBDIR = "enclave"
STATE_FILE = "state.json"


def resolve_state_dir(state_dir: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """`--state-dir`, else `$NB_STATE_DIR`, else `./.nitro-bundles-local`; enclave files below."""
    env = os.environ if environ is None else environ
    base = state_dir or Path(env.get(STATE_ENV) or DEFAULT_STATE_DIR)
    return base.absolute() / ENCLAVE_SUBDIR
