# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The owner's confidential entrypoint: score the user's patients with the owner's model.

Runs inside the enclave as `ml_algorithm.py -m model.h5 -d /dataset/ -o /output/` (the seed's
syntax): `model.h5` is a file of the decrypted bundle, `/dataset/` the user's synced plaintext
data, `/output/` what the user gets back. The enclave runs this script with the user's session
folder as its working directory, not the bundle's (specs/threat-model.md §5.3), so the owner's
own files are found next to this script (`APP_DIR`), never through the working directory.
Reads every *.csv in the data set (30 feature columns, an optional `diagnosis` column), writes
predictions.csv and, when labels are present, metrics.json. Needs only numpy and h5py.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np

#: The decrypted bundle: this script's own folder (the enclave passes its absolute path).
APP_DIR = Path(__file__).resolve().parent


def log(message: str) -> None:
    # Flushed line by line so the user sees progress while the run goes on.
    print(f"[ml_algorithm] {message}", flush=True)


def owner_file(path: Path) -> Path:
    """A relative `-m` names a file of the bundle: resolve it against `APP_DIR`."""
    return path if path.is_absolute() else APP_DIR / path


def load_model(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    with h5py.File(path, "r") as f:
        params = {name: np.asarray(f[name]) for name in ("mean", "scale", "w1", "b1", "w2", "b2")}
        features = [str(v) for v in f.attrs["features"]]
        log(f"loaded model {f.attrs['model']} ({len(features)} features)")
    return params, features


def read_rows(path: Path, features: list[str]) -> tuple[np.ndarray, list[str] | None]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [name for name in features if name not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path.name}: missing columns {missing[:3]}")
        rows = list(reader)
    x = np.array([[float(row[name]) for name in features] for row in rows])
    labels = [row["diagnosis"] for row in rows] if rows and "diagnosis" in rows[0] else None
    return x, labels


def predict(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    z = (x - params["mean"]) / params["scale"]
    h = np.tanh(z @ params["w1"] + params["b1"])
    return 1 / (1 + np.exp(-(h @ params["w2"] + params["b2"][0])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="score patients with the owner's model")
    parser.add_argument("-m", "--model", type=Path, required=True)
    parser.add_argument("-d", "--dataset", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    params, features = load_model(owner_file(args.model))
    files = sorted(args.dataset.glob("*.csv"))
    if not files:
        print(f"no .csv files in {args.dataset}", file=sys.stderr)
        return 3
    args.output.mkdir(parents=True, exist_ok=True)
    totals = {"rows": 0, "correct": 0, "labelled": 0}
    with (args.output / "predictions.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["file", "row", "p_benign", "prediction"])
        for path in files:
            x, labels = read_rows(path, features)
            p = predict(params, x)
            for i, prob in enumerate(p):
                writer.writerow(
                    [path.name, i, f"{prob:.6f}", "benign" if prob >= 0.5 else "malignant"]
                )
            totals["rows"] += len(p)
            if labels is not None:
                predicted = ["benign" if prob >= 0.5 else "malignant" for prob in p]
                totals["correct"] += sum(a == b for a, b in zip(predicted, labels, strict=True))
                totals["labelled"] += len(labels)
            log(f"scored {len(p)} rows of {path.name}")
    metrics = {"rows": totals["rows"], "seconds": round(time.perf_counter() - started, 4)}
    if totals["labelled"]:
        metrics["accuracy"] = round(totals["correct"] / totals["labelled"], 4)
        log(f"accuracy {metrics['accuracy']:.4f} on {totals['labelled']} labelled rows")
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log(f"wrote {args.output / 'predictions.csv'} and metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
