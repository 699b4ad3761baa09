"""Does `data=csv_series` with the defaults forecast a trending series as well as the simple forecasts a
forecaster would try first? A synthetic monthly series of 44 years (528 values, as the CO2 record of
issue 24): a rising, slightly accelerating trend, a yearly season and autocorrelated noise, so that its
test part lies well above anything in its training part. Trained as a user would (`dlcourse-train
data=csv_series data.path=trend.csv data.n_steps=36 data.horizon=H model=rnn`, nothing else: the
default `data.normalize=window`), and beside it the old global standardisation (`data.normalize=global`),
the naive forecast (`model=naive`: the last value), the seasonal naive (`model=naive model.season=12`)
and scikit-learn's Ridge on the same windows (a linear autoregression with 36 lags), all scored on the
same test windows. statsmodels' SARIMAX is not a dependency of dlcourse, so it is not in the table.

    python scripts/series_parity.py                  # horizons 1 and 12, seeds 0-2 (the noise changes)
    python scripts/series_parity.py --seeds 1 --horizons 12
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
from sklearn.linear_model import Ridge

from dlcourse.build import build_datamodule
from dlcourse.compose import compose, job_config
from dlcourse.train import train

N_STEPS, SEASON, LENGTH = 36, 12, 528
COLUMNS = {"rnn": ["model=rnn"], "rnn_global": ["model=rnn", "data.normalize=global"], "naive": ["model=naive", "trainer.max_epochs=1"],
           "seasonal_naive": ["model=naive", f"model.season={SEASON}", "trainer.max_epochs=1"]}


def write_series(folder: Path, seed: int) -> Path:
    """trend 315 + 0.1 t + 0.0001 t², season 3 sin(2 pi t / 12), AR(1) noise (0.6, sd 0.4)."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH)
    noise = np.zeros(LENGTH)
    for i in range(1, LENGTH):
        noise[i] = 0.6 * noise[i - 1] + rng.normal(0, 0.4)
    values = 315 + 0.1 * t + 1e-4 * t**2 + 3 * np.sin(2 * np.pi * t / SEASON) + noise
    path = folder / f"trend-{seed}.csv"
    path.write_text("co2\n" + "\n".join(f"{v:.4f}" for v in values) + "\n")
    return path


def overrides(path: Path, horizon: int, seed: int, run_dir: Path) -> list[str]:
    return ["data=csv_series", f"data.path={path}", f"data.n_steps={N_STEPS}", f"data.horizon={horizon}",
            f"seed={seed}", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "~callbacks.model_summary",
            "~callbacks.figures", "logger=none", f"hydra.run.dir={run_dir}"]


def ridge_mse(cfg) -> float:
    """Ridge on the windows dlcourse trains and tests on, in the series' own units."""
    dm = build_datamodule(cfg)
    dm.setup("fit")
    (x_tr, y_tr), (x_te, y_te) = [(dm.splits[s][0].numpy()[..., 0], dm.splits[s][1].numpy()) for s in ("train", "test")]
    pred = Ridge(alpha=1e-3).fit(x_tr, y_tr).predict(x_te).reshape(y_te.shape)  # horizon 1: sklearn gives (N,)
    return float(np.mean((pred - y_te) ** 2) * dm.std**2)


def measure(horizon: int, seeds: list[int], folder: Path) -> dict[str, list[float]]:
    scores: dict[str, list[float]] = {k: [] for k in [*COLUMNS, "ridge"]}
    for seed in seeds:
        path = write_series(folder, seed)
        for name, extra in COLUMNS.items():
            run_dir = folder / f"h{horizon}-{seed}-{name}"
            cfg = job_config(compose([*overrides(path, horizon, seed, run_dir), *extra], output_dir=run_dir))
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                metrics = train(cfg)
            scores[name].append(metrics["test"]["test/mse_raw"])
            if name == "naive":
                scores["ridge"].append(ridge_mse(cfg))
        print(f"horizon {horizon} seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in scores.items()),
              file=sys.stderr)
    return scores


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--horizons", default="1,12", help="comma-separated forecast horizons")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (the noise and the training)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady on a shared machine)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    lines = ["| horizon | dlcourse rnn (normalize=window, default) | rnn, normalize=global (before) | naive (last value) "
             "| seasonal naive (season 12) | scikit-learn Ridge, 36 lags |", "|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for horizon in (int(h) for h in args.horizons.split(",")):
            scores = measure(horizon, list(range(args.seeds)), Path(tmp))
            cells = [f"{statistics.fmean(v):.4f} ± {statistics.pstdev(v):.4f}" for v in scores.values()]
            lines.append(f"| {horizon} | " + " | ".join(cells) + " |")
    print(f"Test MSE in the series' own units (ppm²), mean ± std over seeds 0-{args.seeds - 1}:\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
