"""Sequences (issue 4): the sine generator, target alignment of each head, the models, the experiments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from dlcourse.config.validate import check_node
from dlcourse.data.csv_series import CSVSeriesDataModule
from dlcourse.data.series import windows_to_xy
from dlcourse.data.sine import SineDataModule, sine_series
from dlcourse.errors import ConfigError, DataError
from dlcourse.metrics import LastOutputsMSE
from dlcourse.models.baselines import Linear, Naive
from dlcourse.models.rnn import RNN
from dlcourse.models.wavenet import WaveNet
from dlcourse.train import train

SEQUENCE_EXPERIMENTS = ["sine_naive", "sine_linear", "sine_rnn", "sine_rnn_10", "sine_rnn_iterative",
                        "sine_seq2seq", "sine_lstm", "sine_gru", "sine_wavenet"]
# Small and quick: a few hundred series, a short, shallow run.
SMALL = ["data.n_series=300", "logger=none", "~callbacks.lr_monitor"]
NO_FIGURES = [*SMALL, "~callbacks.figures"]  # where the test is about numbers, not figures


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Small recurrent nets on a shared CPU: one thread is many times faster than oversubscribed ones.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sine(n_series=50, n_steps=5, horizon=3, targets="last", seed=0, **kw):
    dm = SineDataModule(n_series=n_series, n_steps=n_steps, horizon=horizon, targets=targets, seed=seed, **kw)
    dm.setup("fit")
    return dm


# -- the generator ----------------------------------------------------------------------
def test_generator_shapes_ranges_and_seed():
    dm = sine(n_series=1000, n_steps=50, horizon=10, seed=7)
    series = dm.generate()
    assert series.shape == (1000, 60) and series.dtype == np.float32
    assert np.abs(series).max() <= 0.5 + 0.2 + 0.05 + 1e-6  # two amplitudes plus half the noise
    assert series.std() > 0.2  # not degenerate
    np.testing.assert_array_equal(series, sine(n_series=1000, n_steps=50, horizon=10, seed=7).generate())
    assert not np.allclose(series, sine(n_series=1000, n_steps=50, horizon=10, seed=8).generate())
    # Split 70 / 20 / 10 in order, as the textbook's 7,000 / 2,000 / 1,000.
    assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [700, 200, 100]
    np.testing.assert_array_equal(dm.splits["val"][0][:, :, 0].numpy(), series[700:900, :50])


def test_generator_is_the_course_formula():
    rng = np.random.default_rng(3)
    got = sine_series(4, 60, np.random.default_rng(3), noise=0.1)
    p, q, a, b = rng.random((4, 4, 1))
    t = np.linspace(0, 1, 60)
    r = rng.random((4, 60))
    want = 0.5 * np.sin((t - a) * (10 * p + 10)) + 0.2 * np.sin((t - b) * (20 * q + 20)) + 0.1 * (r - 0.5)
    np.testing.assert_allclose(got, want, atol=1e-6)


# -- target alignment (an off-by-one between inputs and targets fails here) ---------------
def test_windows_alignment_on_a_counter():
    w = np.arange(8, dtype=np.float32)[None]  # values equal their time index
    x, y = windows_to_xy(w, n_steps=5, horizon=3, form="last")
    assert x[0, :, 0].tolist() == [0, 1, 2, 3, 4] and y[0].tolist() == [5, 6, 7]
    x, y = windows_to_xy(w, n_steps=5, horizon=3, form="seq2seq")
    assert y.shape == (1, 5, 3)
    for t in range(5):  # after step t: the values at t+1 .. t+3
        assert y[0, t].tolist() == [t + 1, t + 2, t + 3]
    assert y[0, -1].tolist() == [5, 6, 7]  # the last step's forecast is the `last` target


@pytest.mark.parametrize("form", ["last", "seq2seq", "iterative"])
def test_each_head_targets_follow_the_series(form):
    dm = sine(n_series=40, n_steps=6, horizon=3, targets=form, seed=1)
    series = dm.generate()
    n_train = len(dm.splits["train"][0])
    for split, offset in (("train", 0), ("val", n_train)):
        x, y = (t.numpy() for t in dm.splits[split])
        s = series[offset : offset + len(x)]
        np.testing.assert_array_equal(x[:, :, 0], s[:, :6])
        if form == "seq2seq":
            assert y.shape == (len(x), 6, 3)
            for t in range(6):
                for k in range(1, 4):
                    np.testing.assert_array_equal(y[:, t, k - 1], s[:, t + k])
        elif form == "iterative" and split == "train":
            np.testing.assert_array_equal(y, s[:, 6:7])  # trained on the next value only
        else:
            np.testing.assert_array_equal(y, s[:, 6:9])
    assert dm.num_outputs == (6 * 3 if form == "seq2seq" else 3)
    assert dm.last_outputs == 3


# -- models -------------------------------------------------------------------------------
def test_iterative_rollout_equals_rerunning_on_the_growing_window():
    torch.manual_seed(0)
    model = RNN((8, 1), num_outputs=4, cell="gru", hidden=[5, 4], head="iterative").eval()
    x = torch.randn(3, 8, 1)
    with torch.no_grad():
        rolled = model(x)
        window, expected = x, []
        for _ in range(4):
            model.train()  # one-step mode; no dropout configured, so the output is deterministic
            nxt = model(window)
            expected.append(nxt)
            window = torch.cat([window, nxt.unsqueeze(-1)], dim=1)
    assert rolled.shape == (3, 4)
    torch.testing.assert_close(rolled, torch.cat(expected, 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: RNN((12, 1), 12 * 2, cell="lstm", hidden=[4, 4], head="seq2seq"),
    lambda: WaveNet((12, 1), 12 * 2, filters=4, dilations=[1, 2, 4], head="seq2seq"),
    lambda: Naive((12, 1), 12 * 2, head="seq2seq"),
])
def test_seq2seq_models_are_causal(make):
    """The forecast after step t must not see the inputs after t."""
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(2, 12, 1)
    x2 = x.clone()
    x2[:, 7:] += 1.0
    with torch.no_grad():
        a, b = model(x), model(x2)
    assert a.shape == (2, 12, 2)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_baselines():
    x = torch.arange(10.0).reshape(2, 5, 1)
    assert Naive((5, 1), 3)(x).tolist() == [[4, 4, 4], [9, 9, 9]]
    assert sum(p.numel() for p in Naive((5, 1), 3).parameters()) == 0
    assert Linear((5, 1), 3)(x).shape == (2, 3)
    with pytest.raises(ConfigError, match="model.head='seq2seq' is invalid: allowed: last"):
        check_node("model", OmegaConf.create({"_target_": "dlcourse.models.baselines.Linear", "head": "seq2seq"}))


def test_last_outputs_mse():
    m = LastOutputsMSE(2)
    m.update(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[5.0, 1.0, 4.0]]))
    assert float(m.compute()) == pytest.approx((0 + 4) / 2)


# -- whole runs ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", SEQUENCE_EXPERIMENTS)
def test_each_sequence_experiment_runs_one_epoch(cfg_factory, name):
    cfg = cfg_factory(f"experiment={name}", *SMALL)
    metrics = train(cfg)
    assert metrics["status"] == "completed" and metrics["task"] == "regression"
    for split in ("val", "test"):
        for key in ("mse", "mae", "mse_last"):
            assert np.isfinite(metrics[split][f"{split}/{key}"])
    assert metrics["optimized_value"] is not None
    assert (Path(cfg.paths.output_dir) / "figures" / "forecast.png").is_file()
    if name == "sine_naive":
        assert metrics["trainable_params"] == 0


def test_naive_mse_equals_numpy(cfg_factory):
    cfg = cfg_factory("experiment=sine_naive", *NO_FIGURES)
    metrics = train(cfg)
    dm = SineDataModule(n_series=300, n_steps=50, horizon=1, seed=cfg.seed)
    series = dm.generate().astype(np.float64)
    val, test = series[210:270], series[270:]
    assert metrics["val"]["val/mse"] == pytest.approx(np.mean((val[:, 49] - val[:, 50]) ** 2), rel=1e-5)
    assert metrics["test"]["test/mse"] == pytest.approx(np.mean((test[:, 49] - test[:, 50]) ** 2), rel=1e-5)
    assert metrics["val"]["val/mae"] == pytest.approx(np.mean(np.abs(val[:, 49] - val[:, 50])), rel=1e-5)


def test_seq2seq_last_step_mse_is_the_last_steps_forecast(cfg_factory, tmp_path):
    """For the naive forecast, seq2seq's mse_last must equal the `last` head's MSE at horizon 10."""
    cfg = cfg_factory("experiment=sine_naive", "model.head=seq2seq", "data.horizon=10", *NO_FIGURES)
    cfg.paths.output_dir = str(tmp_path / "seq2seq")
    seq = train(cfg)
    last = train(cfg_factory("experiment=sine_naive", "data.horizon=10", *NO_FIGURES))
    assert seq["val"]["val/mse_last"] == pytest.approx(last["val"]["val/mse"], rel=1e-5)
    assert seq["val"]["val/mse"] != pytest.approx(seq["val"]["val/mse_last"])


# -- the user's own series ----------------------------------------------------------------
def write_csv(path, n=200):
    t = np.arange(n)
    lines = ["date,a,b"] + [f"2024-01-{i % 28 + 1:02d},{np.sin(0.3 * i):.6f},{np.cos(0.2 * i) + 0.01 * i:.6f}" for i in t]
    path.write_text("\n".join(lines) + "\n")


def test_csv_series_windows_split_in_time(tmp_path):
    path = tmp_path / "series.csv"
    write_csv(path, 200)
    dm = CSVSeriesDataModule(path=str(path), columns="a", n_steps=10, horizon=2, standardize=False, seed=0)
    dm.setup("fit")
    a = np.sin(0.3 * np.arange(200))
    # 140 / 40 / 20 values; a validation or test window forecasts 2 values of its part from the 10 before
    # them (reaching into the part before): every value of the part is forecast. Training windows stay inside.
    assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [140 - 11, 40 - 1, 20 - 1]
    x, y = (t.numpy() for t in dm.splits["val"])
    np.testing.assert_allclose(x[0, :, 0], a[130:140], atol=1e-5)
    np.testing.assert_allclose(y[0], a[140:142], atol=1e-5)
    np.testing.assert_allclose(y[-1], a[178:180], atol=1e-5)  # the last forecast ends where the part ends
    np.testing.assert_allclose(dm.splits["train"][1][-1].numpy(), a[138:140], atol=1e-5)  # no val value trained on
    both = CSVSeriesDataModule(path=str(path), n_steps=10, horizon=2, targets="seq2seq", stride=2, seed=0)
    both.setup("fit")  # every numeric column (the date is skipped), pooled
    assert both.feature_names == ["a", "b"]
    assert both.splits["train"][1].shape == (2 * 65, 10, 2)
    # seq2seq targets follow every input step: its windows stay inside their part (20 values: 9 windows)
    assert len(both.splits["test"][0]) == 2 * 5
    assert abs(float(both.splits["train"][0].mean())) < 0.2  # standardized by the training parts
    with pytest.raises(DataError, match="train part .* shorter than one window"):
        CSVSeriesDataModule(path=str(path), columns=["a"], n_steps=139, horizon=2, seed=0).setup("fit")
    with pytest.raises(DataError, match="test part .* shorter than the horizon = 30"):
        CSVSeriesDataModule(path=str(path), columns=["a"], n_steps=10, horizon=30, seed=0).setup("fit")
    with pytest.raises(DataError, match="not a column"):
        CSVSeriesDataModule(path=str(path), columns=["c"], seed=0).setup("fit")


def test_csv_series_trains(cfg_factory, tmp_path):
    path = tmp_path / "series.csv"
    write_csv(path, 300)
    cfg = cfg_factory("experiment=sine_seq2seq", "data=csv_series", f"data.path={path}", "data.n_steps=20",
                      "data.horizon=3", *SMALL[1:])
    metrics = train(cfg)
    assert np.isfinite(metrics["val"]["val/mse_last"])
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert saved["val"]["val/mse_last"] == metrics["val"]["val/mse_last"]
