"""Does `data=csv` with the defaults (no experiment, no tuning) reach scikit-learn's level on tables it
has never seen? Public tables that ship inside scikit-learn (so this runs offline), each written to
CSV and trained as a user would (`dlcourse-train data=csv data.path=... data.target=target`), then
compared on the same test rows with scikit-learn's linear model and MLP fitted on the same training
rows (standardised with their statistics), over several seeds (the split changes with the seed).
The `_gaps` rows are the same tables with 20% of the feature cells blanked at random (seed 0) and, for
breast_cancer, a word column with gaps too; their baselines impute as dlcourse does:
Pipeline(SimpleImputer(median, add_indicator=True), StandardScaler(), LogisticRegression/Ridge or MLP),
and HistGradientBoosting, which takes the gaps as they are.
The last row is an image folder: the digits written as 8x8 PNGs (`data=image_folder`, channels and
size read from the images), with the default MLP and with model=cnn, against an RBF SVC on the pixels.
The `_imbalanced` rows (scripts/tabular_imbalance.py; only with --only) are breast_cancer and digits with
classes cut down (seed 0), with the defaults and task.class_weight=balanced against LogisticRegression
without and with class_weight='balanced': balanced accuracy and accuracy, in a table of their own.

    python scripts/tabular_parity.py                     # every table but the _imbalanced ones, the images, seeds 0-4
    python scripts/tabular_parity.py --only digits,digit_images --seeds 3
    python scripts/tabular_parity.py --only breast_cancer_gaps,diabetes_gaps --seeds 3
    python scripts/tabular_parity.py --only breast_cancer_imbalanced,digits_imbalanced --seeds 5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from dlcourse.build import build_datamodule
from dlcourse.compose import compose, job_config
from dlcourse.train import train

TABLES = {  # name -> (loader, task, what it is)
    "breast_cancer": (datasets.load_breast_cancer, "classification", "binary, 569 x 30"),
    "wine": (datasets.load_wine, "classification", "3 classes, 178 x 13"),
    "digits": (datasets.load_digits, "classification", "10 classes, 1797 x 64 pixels (some constant)"),
    "iris": (datasets.load_iris, "classification", "3 classes, 150 x 4"),
    "diabetes": (datasets.load_diabetes, "regression", "regression, 442 x 10, target 25-346"),
    "breast_cancer_gaps": (datasets.load_breast_cancer, "classification",
                           "breast_cancer, 20% of cells blank, + a word column (low/None/high) with gaps"),
    "diabetes_gaps": (datasets.load_diabetes, "regression", "diabetes, 20% of cells blank"),
}
GAPS = 0.2


def write_table(name: str, folder: Path) -> Path:
    loader, task, _ = TABLES[name]
    data = loader(as_frame=True)
    table = data.frame.rename(columns={"target": "target"})
    if task == "classification":
        table["target"] = [str(data.target_names[t]) for t in data.target]
    if name.endswith("_gaps"):
        rng = np.random.default_rng(0)
        features = [c for c in table.columns if c != "target"]
        if task == "classification":  # words too, one spelled None: a category, not a gap
            table.insert(0, "texture_band", np.array(["low", "None", "high"])[
                np.digitize(table["mean texture"], np.quantile(table["mean texture"], [1 / 3, 2 / 3]))])
            features.insert(0, "texture_band")
        blank = rng.random((len(table), len(features))) < GAPS
        table[features] = table[features].astype(object).mask(blank, "")
    path = folder / f"{name}.csv"
    table.to_csv(path, index=False)
    return path


def overrides(path: Path, task: str, seed: int, run_dir: Path) -> list[str]:
    return ["data=csv", f"data.path={path}", "data.target=target", f"data.task={task}", f"seed={seed}",
            "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "~callbacks.model_summary",
            "~callbacks.figures", "logger=none", f"hydra.run.dir={run_dir}"]


def sklearn_scores(cfg, task: str) -> dict[str, float]:
    """The baselines on the rows dlcourse trained and tested on (train rows only, as dlcourse's model)."""
    dm = build_datamodule(cfg)
    dm.setup("fit")
    (x_tr, y_tr), (x_te, y_te) = [tuple(t.numpy() for t in dm.splits[s]) for s in ("train", "test")]
    x_tr, x_te = dm.unprocess(dm.splits["train"][0]).numpy(), dm.unprocess(dm.splits["test"][0]).numpy()
    if task == "regression":
        y_tr, y_te = dm.unscale_target(dm.splits["train"][1]).numpy(), dm.unscale_target(dm.splits["test"][1]).numpy()
    if dm.indicate:  # gaps: the rows as read (NaN; words one-hot, a gap their "(missing)" category)
        return gap_scores(dm._raw["train"][0].numpy(), y_tr, dm._raw["test"][0].numpy(), y_te, task)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    if task == "regression":
        models = {"linear": Ridge(), "MLP": MLPRegressor(max_iter=2000, random_state=0)}
        return {k: r2_score(y_te, m.fit(x_tr, y_tr).predict(x_te)) for k, m in models.items()}
    models = {"linear": LogisticRegression(max_iter=5000), "MLP": MLPClassifier(max_iter=2000, random_state=0)}
    return {k: accuracy_score(y_te, m.fit(x_tr, y_tr).predict(x_te)) for k, m in models.items()}


def gap_scores(x_tr, y_tr, x_te, y_te, task: str) -> dict[str, float]:
    def imputed(model):
        return make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler(), model)

    if task == "regression":
        models = {"linear": imputed(Ridge()), "MLP": imputed(MLPRegressor(max_iter=2000, random_state=0)),
                  "HistGradientBoosting": HistGradientBoostingRegressor(random_state=0)}
        return {k: r2_score(y_te, m.fit(x_tr, y_tr).predict(x_te)) for k, m in models.items()}
    models = {"linear": imputed(LogisticRegression(max_iter=5000)),
              "MLP": imputed(MLPClassifier(max_iter=2000, random_state=0)),
              "HistGradientBoosting": HistGradientBoostingClassifier(random_state=0)}
    return {k: accuracy_score(y_te, m.fit(x_tr, y_tr).predict(x_te)) for k, m in models.items()}


def measure(name: str, seeds: list[int], folder: Path) -> dict:
    _, task, _ = TABLES[name]
    path = write_table(name, folder)
    scores: dict[str, list[float]] = {"dlcourse": [], "linear": [], "MLP": []}
    if name.endswith("_gaps"):
        scores["HistGradientBoosting"] = []
    for seed in seeds:
        cfg = job_config(compose(overrides(path, task, seed, folder / f"{name}-{seed}"),
                                 output_dir=folder / f"{name}-{seed}"))
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metrics = train(cfg)
            baselines = sklearn_scores(cfg, task)
        scores["dlcourse"].append(metrics["test"]["test/r2" if task == "regression" else "test/acc"])
        for k, v in baselines.items():
            scores[k].append(v)
        print(f"{name} seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in scores.items()), file=sys.stderr)
    return scores


def write_digit_images(folder: Path) -> Path:
    from PIL import Image

    digits = datasets.load_digits()
    root = folder / "digit_images"
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 16).clip(0, 255).astype(np.uint8)).save(root / str(label) / f"{i}.png")
    return root


def measure_images(seeds: list[int], folder: Path) -> dict:
    root = write_digit_images(folder)
    scores: dict[str, list[float]] = {"dlcourse": [], "dlcourse model=cnn": [], "SVC": []}
    for seed in seeds:
        for key, model in (("dlcourse", "mlp"), ("dlcourse model=cnn", "cnn")):
            run_dir = folder / f"images-{model}-{seed}"
            args = ["data=image_folder", f"data.root={root}", f"model={model}", f"seed={seed}", "trainer.accelerator=cpu",
                    "trainer.enable_progress_bar=false", "~callbacks.model_summary", "~callbacks.figures", "logger=none"]
            cfg = job_config(compose(args, output_dir=run_dir))
            with contextlib.redirect_stdout(io.StringIO()):
                scores[key].append(train(cfg)["test"]["test/acc"])
        dm = build_datamodule(cfg)
        dm.setup("fit")
        (x_tr, y_tr), (x_te, y_te) = [(dm.denormalize(x).flatten(1).numpy(), y.numpy())
                                      for x, y in (dm.splits["train"], dm.splits["test"])]
        scores["SVC"].append(accuracy_score(y_te, SVC().fit(x_tr, y_tr).predict(x_te)))
        print(f"digit_images seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in scores.items()), file=sys.stderr)
    return scores


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma-separated table names (default: all but the _imbalanced ones)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (each its own split)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady on a shared machine)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    names = [n for n in (args.only.split(",") if args.only else [*TABLES, "digit_images"]) if n]
    header = ["| table | what | metric | dlcourse defaults | scikit-learn linear | scikit-learn MLP |",
              "|---|---|---|---:|---:|---:|"]
    imbalanced = [n for n in names if n.endswith("_imbalanced")]
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        rows = [table_row(name, list(range(args.seeds)), Path(tmp)) for name in names if name not in imbalanced]
        tables += [header + rows] if rows else []
        if imbalanced:  # their own table (scripts/tabular_imbalance.py): two metrics, four columns
            from tabular_imbalance import HEADER, imbalanced_rows

            tables.append(HEADER + [row for name in imbalanced
                                    for row in imbalanced_rows(name, list(range(args.seeds)), Path(tmp), overrides)])
    print(f"Mean ± std over seeds 0-{args.seeds - 1} (the split changes with the seed: 60/20/20, stratified):\n")
    print("\n\n".join("\n".join(t) for t in tables))
    return 0


def table_row(name: str, seeds: list[int], folder: Path) -> str:
    if name == "digit_images":
        scores = measure_images(seeds, folder)
        mlp, cnn, svc = (f"{statistics.fmean(v):.4f} ± {statistics.pstdev(v):.4f}" for v in scores.values())
        return (f"| digit_images | image folder, 1797 8x8 grey PNGs | test accuracy | {mlp} (model=cnn: "
                f"{cnn}) | RBF SVC on the pixels: {svc} | |")
    scores = measure(name, seeds, folder)
    metric = "test R²" if TABLES[name][1] == "regression" else "test accuracy"
    cells = [f"{statistics.fmean(v):.4f} ± {statistics.pstdev(v):.4f}" for v in scores.values()]
    if len(cells) == 4:  # a table with gaps: HistGradientBoosting beside the MLP
        cells = [*cells[:2], f"{cells[2]} (HistGradientBoosting: {cells[3]})"]
    return f"| {name} | {TABLES[name][2]} | {metric} | " + " | ".join(cells) + " |"


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
