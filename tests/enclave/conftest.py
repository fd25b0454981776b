# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The enclave tests' shared kits (`test_runner_kit`, `data_kit`) import from every subfolder."""

from __future__ import annotations

import sys
from pathlib import Path

_KITS = str(Path(__file__).resolve().parent)
if _KITS not in sys.path:
    sys.path.insert(0, _KITS)
