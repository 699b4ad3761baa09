"""Forecasting series that trend (issue 24): per-window normalisation (data.normalize), test windows that
forecast every value of the test part, the seasonal naive baseline, bootstrap intervals of the errors,
and the series that used to be silently wrong (inf, a misspelt column) as one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, QUIET_RUN, make_cfg, one_line, run_in_process
from dlcourse.app import main
from dlcourse.data.csv_series import CSVSeriesDataModule
from dlcourse.errors import ConfigError, DataError
from dlcourse.intervals import bootstrap_means, error_intervals, interval
from dlcourse.models.baselines import Naive
from dlcourse.models.rnn import RNN
from dlcourse.models.window_norm import WindowNorm
from dlcourse.predictor import load
from dlcourse.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trending(path: Path, n: int = 300, seed: int = 0) -> np.ndarray:
    """A monthly-like series that leaves its training range: trend + yearly season (12 steps) + noise."""
    t = np.arange(n)
    values = 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(seed).normal(0, 0.3, n)
    path.write_text("value\n" + "\n".join(f"{v:.5f}" for v in values) + "\n")
    return values


def run(tmp_path: Path, series: Path, *overrides: str) -> dict:
    out = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    return train(make_cfg([*FAST, *QUIET_RUN, "data=csv_series", f"data.path={series}", "data.n_steps=24",
                           *overrides], out))


@pytest.mark.parametrize(("horizon", "baseline"), [(1, []), (12, ["model.season=12"])],
                         ids=["horizon 1 vs the last value", "horizon 12 vs the seasonal naive"])
def test_the_default_recurrent_model_beats_the_naive_forecasts_on_a_trending_series(tmp_path, horizon, baseline):
    series = tmp_path / "trend.csv"
    trending(series)
    naive = run(tmp_path, series, f"data.horizon={horizon}", "model=naive", *baseline)
    rnn = run(tmp_path, series, f"data.horizon={horizon}", "model=rnn", "trainer.max_epochs=20")
    assert rnn["test"]["test/mse"] < naive["test"]["test/mse"], (rnn["test"], naive["test"])
    # Beyond the noise of the test windows: the model's whole interval lies below the baseline's error.
    assert rnn["test_mse_ci95"][1] < naive["test"]["test/mse"]
    # ... where the old global standardisation, trained below the test part's level, falls behind the baseline
    old = run(tmp_path, series, f"data.horizon={horizon}", "model=rnn", "trainer.max_epochs=20", "data.normalize=global")
    assert old["test"]["test/mse"] > naive["test"]["test/mse"]
    # every value of the test part (30 of 300) is forecast: one window per forecast that fits inside it
    assert rnn["n_test"] == 30 - horizon + 1
    std = float(np.std(np.loadtxt(series, skiprows=1)[:210]))  # the training part's, as the data module takes it
    assert rnn["test"]["test/mse_raw"] == pytest.approx(rnn["test"]["test/mse"] * std**2, rel=1e-4)
    assert rnn["test"]["test/mae_raw"] == pytest.approx(rnn["test"]["test/mae"] * std, rel=1e-4)


def test_window_normalisation_moves_with_the_window_and_is_causal_for_seq2seq():
    torch.manual_seed(0)
    last = WindowNorm(RNN((12, 1), 3, hidden=[4])).eval()
    x = torch.randn(5, 12, 1)
    with torch.no_grad():
        # a window lifted by 100 and stretched 3x is forecast lifted and stretched the same (up to the floor EPS)
        torch.testing.assert_close(last(3 * x + 100), 3 * last(x) + 100, atol=2e-2, rtol=1e-3)
    seq = WindowNorm(RNN((12, 1), 12 * 2, hidden=[4], head="seq2seq")).eval()
    x2 = x.clone()
    x2[:, 7:] += 1.0
    with torch.no_grad():
        a, b = seq(x), seq(x2)
        torch.testing.assert_close(seq(x + 100), a + 100, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(a[:, :7], b[:, :7])  # the forecast after step t sees no later input
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_seasonal_naive_repeats_the_last_season():
    x = torch.arange(2 * 24, dtype=torch.float32).reshape(2, 24, 1)
    out = Naive((24, 1), 14, season=12)(x)
    np.testing.assert_array_equal(out[0].numpy(), [*range(12, 24), 12, 13])  # a year ago, then two years ago
    assert Naive((24, 1), 2)(x)[1].tolist() == [47.0, 47.0]  # season 1: the last value
    seq = Naive((6, 1), 6 * 3, head="seq2seq", season=2)(torch.arange(6.0).reshape(1, 6, 1))
    # after step t, k steps ahead: the value a whole number of seasons before t + k, up to step t
    assert seq[0, 3].tolist() == [2.0, 3.0, 2.0] and seq[0, 0].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match=r"model\.season=30 .*n_steps=24"):
        Naive((24, 1), 1, season=30)


def test_test_windows_reach_back_so_a_long_monthly_series_gets_its_test_forecasts(tmp_path):
    path = tmp_path / "monthly.csv"
    trending(path, n=528)  # 44 years of months: 53 test values
    dm = CSVSeriesDataModule(path=str(path), n_steps=36, horizon=12, seed=0)
    dm.setup("fit")
    values = np.loadtxt(path, skiprows=1)
    x, y = dm.splits["test"]
    assert len(x) == 53 - 12 + 1  # every test value forecast (before: 53 - 48 + 1 = 6, and refused when shorter)
    z = (values - dm.mean) / dm.std
    np.testing.assert_allclose(y[0].numpy(), z[475:487], atol=1e-5)  # the first forecast: the part's first year
    np.testing.assert_allclose(x[0, :, 0].numpy(), z[439:475], atol=1e-5)  # from the 36 validation values before it
    assert float(dm.splits["train"][1].max()) < float(y.min()) + 10  # trained below: a level the model never saw


def test_predict_and_eval_give_the_series_units_with_window_normalisation(tmp_path, capfd):
    series = tmp_path / "trend.csv"
    values = trending(series, n=200)
    out = tmp_path / "run"
    train(make_cfg([*FAST, *QUIET_RUN, "data=csv_series", f"data.path={series}", "data.n_steps=24", "data.horizon=2",
                    "model=rnn", "trainer.max_epochs=3"], out))
    p = load(out)
    windows = np.stack([values[i:i + 24] for i in range(150, 170)]).astype(np.float32)
    got = p.predict(windows)[["prediction_0", "prediction_1"]].to_numpy()
    lifted = p.predict(windows + 1000)[["prediction_0", "prediction_1"]].to_numpy()
    np.testing.assert_allclose(lifted, got + 1000, atol=1e-2)  # the level of each window, not the training one
    assert np.abs(got[:, 0] - values[174:194]).mean() < np.abs(values[174:194] - values.mean()).mean()
    table = p.predict(series)  # the CSV as training read it: forecasts after each full window
    np.testing.assert_allclose(table["forecast_1"].to_numpy()[23:], p.predict(
        np.lib.stride_tricks.sliding_window_view(values, 24).astype(np.float32))["prediction_0"], rtol=1e-5)
    evaluated = p.evaluate("test")
    saved = json.loads((out / "metrics.json").read_text())
    assert evaluated["test/mse"] == pytest.approx(saved["test"]["test/mse"], rel=1e-5)
    assert evaluated["test_mse_ci95"] == saved["test_mse_ci95"] and evaluated["n_test"] == saved["n_test"] == 19


def test_intervals_resample_rows_and_blocks():
    rng = np.random.default_rng(0)
    iid = rng.normal(1.0, 1.0, 400)
    low, high = error_intervals("test", iid[:, None], np.zeros((400, 1)))["test_mae_ci95"]
    assert low < np.abs(iid).mean() < high and high - low < 0.3
    # errors that drift together (a random walk) are far less certain than as many independent ones
    walk = np.cumsum(rng.normal(0, 1, 400))
    assert np.std(bootstrap_means(walk, block=20)) > 2 * np.std(bootstrap_means(walk, block=1))
    big = rng.normal(0, 1, 200_000)  # past 100,000 rows: the normal interval, without thousands of resamples
    np.testing.assert_allclose(interval(big), big.mean() + np.array([-1.96, 1.96]) * big.std() / np.sqrt(2e5), rtol=1e-3)
    both = error_intervals("val", walk[:, None], np.zeros((400, 1)), scale=2.0)
    assert both["n_val"] == 400 and both["val_mse_raw_ci95"] == pytest.approx(
        [4 * v for v in both["val_mse_ci95"]], rel=1e-4)


@pytest.mark.parametrize(("text", "overrides", "says"), [
    ("sales\n" + "1.5\n" * 99 + "inf\n", [], r"column 'sales' .*an infinite value \(inf\) \(first at line 101"),
    ("sales\n" + "1.5\n" * 100, ["data.columns=[sals]"], r"'sals' is not a column .*\(did you mean 'sales'\?\)"),
    ("sales\n" + "1.5\n" * 100, ["data.normalize=local"], r"data\.normalize.*local.*window.*global"),
], ids=["inf", "a misspelt column", "an unknown normalisation"])
def test_series_that_were_silently_wrong_are_one_line_with_no_run_directory(tmp_path, capfd, text, overrides, says):
    path = tmp_path / "s.csv"
    path.write_text(text)
    result = run_in_process(main, ["data=csv_series", f"data.path={path}", "data.n_steps=5", "model=rnn", *FAST,
                                   *overrides], tmp_path, capfd)
    err = result.stderr.strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1, err
    assert re.search(says, err), err
    assert not (tmp_path / "outputs").exists()


def test_series_errors_from_python_are_one_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("sales,cost\n" + "1.5,2\n" * 99 + "-inf,nan\n")
    for columns, says in ((["sals"], "did you mean 'sales'"), (["sales"], "infinite value"), (["cost"], "missing")):
        with pytest.raises(DataError, match=says) as e:
            CSVSeriesDataModule(path=str(path), columns=columns, n_steps=5, seed=0).setup("fit")
        assert "line 101" in one_line(e) or "sals" in columns


def test_a_regression_table_reports_intervals_of_its_test_errors(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    rows = [f"{a:.4f},{b:.4f},{100 + 10 * a - 5 * b + rng.normal():.4f}" for a, b in x]
    (tmp_path / "t.csv").write_text("a,b,y\n" + "\n".join(rows) + "\n")
    metrics = train(make_cfg([*FAST, *QUIET_RUN, "data=csv", f"data.path={tmp_path / 't.csv'}", "data.target=y",
                              "data.task=regression"], tmp_path / "run"))
    for name in ("mse", "mae"):  # in the target's units, around the test value
        low, high = metrics[f"test_{name}_ci95"]
        assert low < metrics["test"][f"test/{name}"] < high
    assert metrics["n_test"] == 40 and "test_mse_raw_ci95" not in metrics  # a table has no series scale
