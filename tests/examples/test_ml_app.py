# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The sample app scores the user's rows with the owner's model, as the seed's command runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_ml_algorithm_scores_user_dataset(tmp_path: Path) -> None:
    out = tmp_path / "output"
    proc = subprocess.run(
        [
            sys.executable,
            "ml_algorithm.py",
            "-m",
            "model.h5",
            "-d",
            str(EXAMPLES / "user" / "dataset"),
            "-o",
            str(out),
        ],
        cwd=EXAMPLES / "ml_app",
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == 169
    assert metrics["accuracy"] > 0.9
    lines = (out / "predictions.csv").read_text().splitlines()
    assert len(lines) == 170
    assert "[ml_algorithm] scored 169 rows of patients.csv" in proc.stdout


def test_ml_algorithm_without_csv_fails(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "ml_algorithm.py",
            "-m",
            "model.h5",
            "-d",
            str(tmp_path / "empty"),
            "-o",
            str(tmp_path / "o"),
        ],
        cwd=EXAMPLES / "ml_app",
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3
    assert "no .csv files" in proc.stderr


def test_ml_algorithm_finds_its_model_from_the_session_folder(tmp_path: Path) -> None:
    # The enclave runs the script by its absolute path with the user's session folder as the
    # working directory (specs/threat-model.md §5.3): `-m model.h5` is found beside the script.
    out = tmp_path / "output"
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "ml_app" / "ml_algorithm.py"),
            "-m",
            "model.h5",
            "-d",
            str(EXAMPLES / "user" / "dataset"),
            "-o",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "metrics.json").read_text())["rows"] == 169
