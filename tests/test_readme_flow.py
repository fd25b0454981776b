# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The README's "By hand, step by step" blocks run as written, in order (issue 17).

The test pastes them into one bash, as a user pastes them into a shell, so the README
cannot drift from the tools: a renamed flag or a missing step fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECTION = "## By hand, step by step"


def readme_blocks() -> list[str]:
    """The ```sh blocks of the README's hand-flow section, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def _clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NB_"))}
    # mktemp -d lands under the test's directory, so clean-up can find what the flow made.
    env["TMPDIR"] = str(tmp)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def _clean_up(tmp: Path) -> None:
    # If the flow stopped half-way, stop what it started (the README's last block's work).
    bin_dir = REPO / ".venv" / "bin"
    for state in tmp.glob("*/state"):
        for argv in (
            [bin_dir / "user-runtime", "sync", "--stop", "-d", state.parent / "synced_folder"],
            [bin_dir / "user-runtime", "enclave", "stop"],
            [bin_dir / "local-stack", "down"],
        ):
            subprocess.run(
                [*map(str, argv), "--state-dir", str(state)],
                capture_output=True,
                check=False,
                timeout=120,
            )


def test_readme_has_the_whole_flow() -> None:
    script = "\n".join(readme_blocks())
    for step in ("local-stack up", "create-key", "create-bucket", "owner-tools publish"):
        assert step in script
    for step in ("local-stack env --as host", "user-runtime run", "local-stack down"):
        assert step in script
    # Nothing elided: a user cannot guess what "..." stands for.
    assert "..." not in script.replace('"$REPO"/', "")


def test_readme_flow_runs_as_written(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + "\n".join(readme_blocks())
    try:
        proc = subprocess.run(
            ["bash", "-c", script],
            cwd=REPO,
            env=_clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        _clean_up(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "predictions.csv" in proc.stdout
    assert "metrics.json" in proc.stdout
    assert "[ml_algorithm] scored 169 rows" in proc.stdout + proc.stderr
    assert "local-stack: stopped" in proc.stderr
