# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Print the versions this app imports, and what `python` on PATH imports (issue 21)."""

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import typing_extensions
import urllib3

on_path = subprocess.run(
    ["python", "-c", "import urllib3, sys; print(urllib3.__version__, sys.prefix)"],
    capture_output=True,
    text=True,
    check=True,
).stdout.split()
found = {
    "urllib3": urllib3.__version__,
    "typing_extensions": version("typing_extensions"),
    "typing_extensions_file": typing_extensions.__file__,
    "prefix": sys.prefix,
    "path_python_urllib3": on_path[0],
    "path_python_prefix": on_path[1],
}
print(json.dumps(found, sort_keys=True))
Path("/output/versions.json").write_text(json.dumps(found, sort_keys=True))
