"""The imbalanced rows of scripts/tabular_parity.py (issue 24): public tables with classes cut down
(seed 0), trained with the defaults and with `task.class_weight=balanced`, against scikit-learn's
LogisticRegression (standardised) without and with class_weight='balanced', on the same test rows.
Balanced accuracy (scikit-learn's balanced_accuracy_score; dlcourse's is metrics.json's
`test/balanced_acc`, checked against balanced_accuracy_score on the predictions of dlcourse's own best
checkpoint) and plain accuracy. Selected with `--only`; not among tabular_parity's default rows.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

from dlcourse.build import build_datamodule
from dlcourse.compose import compose, job_config
from dlcourse.predictor import Predictor
from dlcourse.train import train

IMBALANCED = {  # name -> (loader, {class: rows kept}, what it is)
    "breast_cancer_imbalanced": (datasets.load_breast_cancer, {0: 31},
                                 "breast_cancer, malignant cut to 31 of 212 rows: 31 of 388 (8.0%)"),
    "digits_imbalanced": (datasets.load_digits, {1: 18, 3: 18, 5: 18, 7: 18, 9: 18},
                          "digits, 1/3/5/7/9 cut to 18 rows each (~10%): 981 x 64, 90 of them odd (9.2%)"),
}
COLUMNS = ("dlcourse defaults", "dlcourse class_weight=balanced", "LogisticRegression",
           "LogisticRegression class_weight='balanced'")


def write_imbalanced(name: str, folder: Path) -> Path:
    """The table with each listed class cut to that many rows, drawn at random with seed 0."""
    loader, kept, _ = IMBALANCED[name]
    data = loader(as_frame=True)
    rng = np.random.default_rng(0)
    target = data.target.to_numpy()
    keep = np.ones(len(target), dtype=bool)
    for cls, n in kept.items():
        rows = np.flatnonzero(target == cls)
        keep[rows] = False
        keep[rng.choice(rows, size=n, replace=False)] = True
    table = data.frame[keep].copy()
    table["target"] = [str(data.target_names[t]) for t in target[keep]]
    path = folder / f"{name}.csv"
    table.to_csv(path, index=False)
    return path


def dlcourse_run(args: list[str], run_dir: Path) -> tuple[dict, float]:
    """metrics.json's test metrics, and the gap between its balanced accuracy and scikit-learn's on the
    predictions of the run's best checkpoint for the test rows (and the same for the accuracy)."""
    cfg = job_config(compose(args, output_dir=run_dir))
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = train(cfg)
        dm = build_datamodule(cfg)
        dm.setup("fit")
        x_te, y_te = dm.unprocess(dm.splits["test"][0]).numpy(), dm.splits["test"][1].long().numpy()
        predicted = Predictor(Path(record["best_checkpoint"])).predict(x_te)["prediction"].astype(str)
    truth, test = np.array(dm.class_names)[y_te], record["test"]
    return test, max(abs(balanced_accuracy_score(truth, predicted) - test["test/balanced_acc"]),
                     abs(accuracy_score(truth, predicted) - test["test/acc"]))


def logistic_scores(cfg) -> dict[str, tuple[float, float]]:
    """(balanced accuracy, accuracy) of LogisticRegression, standardised, on dlcourse's rows."""
    dm = build_datamodule(cfg)
    dm.setup("fit")
    x_tr, x_te = dm.unprocess(dm.splits["train"][0]).numpy(), dm.unprocess(dm.splits["test"][0]).numpy()
    y_tr, y_te = dm.splits["train"][1].long().numpy(), dm.splits["test"][1].long().numpy()
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    out = {}
    for key, weight in ((COLUMNS[2], None), (COLUMNS[3], "balanced")):
        predicted = LogisticRegression(max_iter=5000, class_weight=weight).fit(x_tr, y_tr).predict(x_te)
        out[key] = (balanced_accuracy_score(y_te, predicted), accuracy_score(y_te, predicted))
    return out


def measure_imbalanced(name: str, seeds: list[int], folder: Path, overrides: Callable) -> dict:
    """{column: ([balanced accuracy per seed], [accuracy per seed])}; prints each seed and the largest gap
    between metrics.json's balanced accuracy and scikit-learn's on the same predictions."""
    path = write_imbalanced(name, folder)
    scores: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in COLUMNS}
    gaps = []
    for seed in seeds:
        for key, extra in ((COLUMNS[0], []), (COLUMNS[1], ["task.class_weight=balanced"])):
            run_dir = folder / f"{name}-{seed}-{len(extra)}"
            test, gap = dlcourse_run([*overrides(path, "classification", seed, run_dir), *extra], run_dir)
            scores[key][0].append(test["test/balanced_acc"])
            scores[key][1].append(test["test/acc"])
            gaps.append(gap)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_dir = folder / f"{name}-{seed}-0"
            baselines = logistic_scores(job_config(compose(overrides(path, "classification", seed, run_dir),
                                                           output_dir=run_dir)))
        for key, (balanced, acc) in baselines.items():
            scores[key][0].append(balanced)
            scores[key][1].append(acc)
        print(f"{name} seed {seed}: " + ", ".join(f"{k} {v[0][-1]:.4f}/{v[1][-1]:.4f}" for k, v in scores.items()),
              file=sys.stderr)
    print(f"{name}: metrics.json test/balanced_acc vs balanced_accuracy_score on the checkpoint's predictions, "
          f"largest gap {max(gaps):.2e} over {len(gaps)} runs", file=sys.stderr)
    return scores


def imbalanced_rows(name: str, seeds: list[int], folder: Path, overrides: Callable) -> list[str]:
    scores = measure_imbalanced(name, seeds, folder, overrides)
    rows = []
    for i, metric in enumerate(("test balanced accuracy", "test accuracy")):
        cells = [f"{statistics.fmean(v[i]):.4f} ± {statistics.pstdev(v[i]):.4f}" for v in scores.values()]
        rows.append(f"| {name} | {IMBALANCED[name][2]} | {metric} | " + " | ".join(cells) + " |")
    return rows


HEADER = ["| table | what | metric | " + " | ".join(COLUMNS) + " |", "|---|---|---|" + "---:|" * len(COLUMNS)]
