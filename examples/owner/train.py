# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The owner's side of the sample: split the public data set and train the confidential model.

Source data: the Breast Cancer Wisconsin (Diagnostic) data set as scikit-learn ships it
(`sklearn/datasets/data/breast_cancer.csv`, 569 rows, 30 features, 0 = malignant,
1 = benign). The split is deterministic: 400 rows are the owner's training data (they stay
with the owner), 169 rows become the user's plaintext data set.

    python examples/owner/train.py --source .../sklearn/datasets/data/breast_cancer.csv

writes examples/owner/training.csv, examples/user/dataset/patients.csv and
examples/ml_app/model.h5. The committed files were made this way; nothing at run time needs
scikit-learn.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import h5py
import numpy as np

FEATURES = [
    f"{stat} {name}"
    for stat in ("mean", "error", "worst")
    for name in (
        "radius",
        "texture",
        "perimeter",
        "area",
        "smoothness",
        "compactness",
        "concavity",
        "concave points",
        "symmetry",
        "fractal dimension",
    )
]
HERE = Path(__file__).resolve().parent
SEED = 20261126
TRAIN_ROWS = 400
HIDDEN = 16


def load_sklearn_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open() as fh:
        rows = list(csv.reader(fh))[1:]  # first line: "569,30,malignant,benign"
    data = np.array(rows, dtype=np.float64)
    return data[:, :30], data[:, 30].astype(np.int64)


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow([*FEATURES, "diagnosis"])
        for features, label in zip(x, y, strict=True):
            out.writerow([*(repr(float(v)) for v in features), "benign" if label else "malignant"])


def train(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """A one-hidden-layer network trained with full-batch gradient descent (numpy only)."""
    rng = np.random.default_rng(SEED)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / scale
    w1 = rng.normal(0, 0.3, (30, HIDDEN))
    b1 = np.zeros(HIDDEN)
    w2 = rng.normal(0, 0.3, (HIDDEN,))
    b2 = np.zeros(1)
    lr, t = 0.1, y.astype(np.float64)
    for _ in range(3000):
        h = np.tanh(z @ w1 + b1)
        p = 1 / (1 + np.exp(-(h @ w2 + b2[0])))
        g = (p - t) / len(t)
        gw2, gb2 = h.T @ g, g.sum()
        gh = np.outer(g, w2) * (1 - h**2)
        gw1, gb1 = z.T @ gh, gh.sum(axis=0)
        w1 -= lr * (gw1 + 1e-3 * w1)
        b1 -= lr * gb1
        w2 -= lr * (gw2 + 1e-3 * w2)
        b2 -= lr * gb2
    return {"mean": mean, "scale": scale, "w1": w1, "b1": b1, "w2": w2, "b2": b2}


def accuracy(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    z = (x - params["mean"]) / params["scale"]
    h = np.tanh(z @ params["w1"] + params["b1"])
    p = 1 / (1 + np.exp(-(h @ params["w2"] + params["b2"][0])))
    return float(((p >= 0.5) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, required=True, help="scikit-learn's breast_cancer.csv"
    )
    args = parser.parse_args()
    x, y = load_sklearn_csv(args.source)
    order = np.random.default_rng(SEED).permutation(len(y))
    train_idx, user_idx = order[:TRAIN_ROWS], order[TRAIN_ROWS:]
    write_csv(HERE / "training.csv", x[train_idx], y[train_idx])
    write_csv(HERE.parent / "user" / "dataset" / "patients.csv", x[user_idx], y[user_idx])
    params = train(x[train_idx], y[train_idx])
    with h5py.File(HERE.parent / "ml_app" / "model.h5", "w", track_order=True) as f:
        for name, value in params.items():
            f.create_dataset(name, data=value)
        f.attrs["model"] = "mlp-30-16-1-tanh-sigmoid"
        f.attrs["features"] = FEATURES
        f.attrs["positive_class"] = "benign"
        f.attrs["train_accuracy"] = accuracy(params, x[train_idx], y[train_idx])
    print(f"train accuracy {accuracy(params, x[train_idx], y[train_idx]):.4f}")
    print(f"held-out accuracy {accuracy(params, x[user_idx], y[user_idx]):.4f}")


if __name__ == "__main__":
    main()
