"""dlcourse.predictor: `load(run dir or checkpoint)` predicts on DataFrames, CSVs, arrays, image files and
series windows exactly as dlcourse-eval and training preprocess them, and evaluates as dlcourse-eval does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import dlcourse
from conftest import image_folder_run, level_series_run, one_line
from dlcourse.errors import CheckpointError, ConfigError, DataError
from dlcourse.evaluate import main as dlcourse_eval
from dlcourse.predictor import Predictor, load

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
PROBS = ["prob_setosa", "prob_versicolor", "prob_virginica"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> tuple[Path, Path]:
    return image_folder_run(tmp_path_factory, "trainer.max_epochs=3")


@pytest.fixture(scope="module")
def series_run(tmp_path_factory) -> tuple[Path, np.ndarray]:
    return level_series_run(tmp_path_factory, "experiment=sine_rnn", "trainer.max_epochs=3")


def flowers() -> pd.DataFrame:
    return pd.DataFrame({"id": ["a", "b", "c", "d"], "petal_width": [0.2, 2.3, 1.3, 1.8],
                         "sepal_length": [5.1, 6.9, 5.7, 6.3], "sepal_width": [3.5, 3.1, 2.8, 2.9],
                         "petal_length": [1.4, 5.8, 4.1, 5.6]})  # any column order, an extra column kept


# -- tables -------------------------------------------------------------------------------------------------
def test_a_table_predicts_exactly_the_csv_dlcourse_eval_writes(iris_run, tmp_path):
    p = load(iris_run)
    inputs, out = tmp_path / "flowers.csv", tmp_path / "out.csv"
    flowers().to_csv(inputs, index=False)
    dlcourse_eval([f"ckpt_path={iris_run}", f"predict={inputs}", f"output={out}"])
    written = pd.read_csv(out)
    for got in (p.predict(flowers()), p.predict(inputs), p.predict(str(inputs))):
        assert list(got.columns) == [*flowers().columns, "prediction", *PROBS] == list(written.columns)
        assert list(got["prediction"]) == list(written["prediction"])
        np.testing.assert_allclose(got[PROBS].to_numpy(np.float64), written[PROBS].to_numpy(), rtol=1e-6)
        assert got[PROBS].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert set(written["prediction"]) <= {"setosa", "versicolor", "virginica"}


def test_raw_feature_arrays_equal_the_same_rows_as_a_dataframe(iris_run):
    p = load(iris_run)
    table = p.predict(flowers())
    raw = flowers()[IRIS].to_numpy()  # training column order
    for x in (raw, raw.astype(np.float32), torch.tensor(raw)):
        got = p.predict(x)
        assert list(got.columns) == ["prediction", *PROBS]
        assert list(got["prediction"]) == list(table["prediction"])
        np.testing.assert_allclose(got[PROBS].to_numpy(), table[PROBS].to_numpy(), rtol=1e-6)
    single = p.predict(raw[1])
    assert len(single) == 1 and single["prediction"][0] == table["prediction"][1]
    # The features are scaled as in training: unscaled inputs would give other probabilities.
    unscaled = torch.softmax(p.model(torch.tensor(raw, dtype=torch.float32)), -1).detach().numpy()
    assert not np.allclose(unscaled, table[PROBS].to_numpy(), atol=1e-3)


def test_evaluate_returns_what_dlcourse_eval_writes_and_writes_nothing(iris_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(iris_run.rglob("*")) + sorted(tmp_path.rglob("*"))
    p = load(iris_run)
    test, val = p.evaluate(), p.evaluate("val")
    assert p.evaluate("test") == test  # evaluating val leaves the test split the test split
    p.predict(flowers())
    assert sorted(iris_run.rglob("*")) + sorted(tmp_path.rglob("*")) == before
    for split, metrics in (("test", test), ("val", val)):
        dlcourse_eval([f"ckpt_path={iris_run}", f"split={split}"])
        written = json.loads((iris_run / f"eval_{split}.json").read_text())
        assert written.pop("checkpoint") == str(p.checkpoint) and written.pop("split") == split
        assert written == metrics and f"{split}/acc" in metrics and metrics[f"n_{split}"] == 30
    with pytest.raises(ConfigError) as e:
        p.evaluate("train")
    assert "allowed: test, val" in one_line(e)


def test_what_a_predictor_says_about_its_model(iris_run):
    best = json.loads((iris_run / "metrics.json").read_text())["best_checkpoint"]
    p = load(iris_run)
    assert p.checkpoint == Path(best) and p.run_dir == iris_run
    assert isinstance(p.model, torch.nn.Module) and not p.model.training
    assert (p.task, p.class_names, p.feature_names, p.input_shape) == (
        "multiclass", ["setosa", "versicolor", "virginica"], IRIS, (4,))
    assert p.config["name"] == "iris_mlp" and p.config["trainer"]["max_epochs"] == 3
    for text in (repr(p), p._repr_html_()):
        assert all(s in text for s in ("iris_mlp", "multiclass", "sepal_length", "virginica", str(p.checkpoint)))
    last = dlcourse.load(iris_run / "checkpoints" / "last.ckpt", "trainer.accelerator=cpu", "data.batch_size=8")
    assert isinstance(last, Predictor) and last.run_dir == iris_run and last.config["data"]["batch_size"] == 8


def test_bad_table_inputs_and_paths_are_one_line(iris_run, tmp_path):
    p = load(iris_run)
    cases = [
        (np.zeros((2, 3)), r"expected 4 features \(sepal_length, sepal_width, petal_length, petal_width\) per row.*got 3"),
        (np.zeros(5), "expected 4 features.*got 5"),
        (np.zeros((2, 4, 1)), r"got an array of shape \(2, 4, 1\)"),
        (flowers().drop(columns="petal_width"), "the DataFrame needs the columns .*; it lacks petal_width"),
        (tmp_path / "missing.csv", "no such file"),
        (tmp_path / "notes.txt", "cannot predict on PosixPath: expected a DataFrame or .csv with the columns"),
        ([[5.1, 3.5, 1.4, 0.2]], "cannot predict on list"),
    ]
    for x, says in cases:
        with pytest.raises(DataError, match=says) as e:
            p.predict(x)
        one_line(e)
    with pytest.raises(CheckpointError) as e:
        load(tmp_path / "no_such_run")
    assert "no such checkpoint file" in one_line(e)
    with pytest.raises(ConfigError) as e:
        load(iris_run, "model.hidden=[7]")
    one_line(e)


# -- images -------------------------------------------------------------------------------------------------
def test_image_folder_file_and_arrays_agree_and_are_mostly_right(image_run):
    run, pics = image_run
    p = load(run)
    assert p.input_shape == (3, 16, 16) and p.class_names == ["blue", "red"]
    folder = p.predict(pics)
    files = sorted(pics.rglob("*.png"))
    assert list(folder.columns) == ["path", "prediction", "prob_blue", "prob_red"]
    assert list(folder["path"]) == [str(f) for f in files]
    truth = [Path(f).parent.name for f in folder["path"]]
    assert (folder["prediction"] == truth).mean() >= 0.8  # learnable colours, training images
    one = p.predict(files[-1])
    assert one["path"][0] == str(files[-1]) and one["prob_red"][0] == pytest.approx(folder["prob_red"].iloc[-1], abs=1e-6)
    listed = p.predict([str(files[0]), files[-1]])
    assert listed["prob_red"].tolist() == pytest.approx(folder["prob_red"].iloc[[0, -1]].tolist(), abs=1e-6)
    pixels = np.stack([np.asarray(Image.open(f)) for f in files]).transpose(0, 3, 1, 2)  # (N, 3, 20, 20) uint8
    resized = np.stack([np.asarray(Image.open(f).resize((16, 16), Image.BILINEAR)) for f in files])
    for x in (pixels, torch.from_numpy(pixels), resized.transpose(0, 3, 1, 2) / 255.0, pixels[-1]):
        got = p.predict(x)
        assert list(got.columns) == ["prediction", "prob_blue", "prob_red"]
        assert got["prob_red"].tolist() == pytest.approx(folder["prob_red"].iloc[-len(got):].tolist(), abs=1e-5)
    framed = p.predict(pd.DataFrame(resized.transpose(0, 3, 1, 2).reshape(len(files), -1) / 255.0))  # C*H*W columns
    assert framed["prob_red"].tolist() == pytest.approx(folder["prob_red"].tolist(), abs=1e-5)
    grey = p.predict(pixels.mean(1).astype(np.uint8))  # (N, H, W): grey images, made RGB as PIL does
    assert len(grey) == len(files)


def test_bad_image_inputs_are_one_line(image_run, tmp_path):
    p = load(image_run[0])
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "broken.png").write_bytes(b"not a png either")
    (tmp_path / "empty").mkdir()
    cases = [
        (tmp_path / "notes.txt", "is not an image file: expected .bmp, .gif"),
        (tmp_path / "broken.png", "cannot read image .*broken.png"),
        (tmp_path / "nowhere.png", "no such image file or folder"),
        (tmp_path / "empty", "no images .* in the folder"),
        (np.zeros((2, 2, 3, 16, 16)), r"expected images as an array \(N, C, H, W\).*got shape \(2, 2, 3, 16, 16\)"),
        (np.zeros((2, 5, 16, 16)), r"got shape \(2, 5, 16, 16\)"),
        (np.full((3, 16, 16), 200.0), "floats in \\[0, 1\\]; these .* go from 200 to 200"),
        ({"x": 1}, "cannot predict on dict: expected an image file"),
    ]
    for x, says in cases:
        with pytest.raises(DataError, match=says) as e:
            p.predict(x)
        one_line(e)


# -- series -------------------------------------------------------------------------------------------------
def test_series_windows_in_raw_units_give_forecasts_in_raw_units(series_run, tmp_path):
    run, values = series_run
    p = load(run)
    assert p.task == "regression" and p.input_shape == (10, 1) and p.class_names is None
    windows = np.lib.stride_tricks.sliding_window_view(values, 12)[::7]  # 10 inputs, 2 true next values
    got = p.predict(windows[:, :10])
    assert list(got.columns) == ["prediction_0", "prediction_1"] and len(got) == len(windows)
    train_part = values[:210]  # 70% of 300: the scaling's statistics
    mean, std = train_part.mean(), train_part.std()
    scaled = torch.tensor((windows[:, :10] - mean) / std, dtype=torch.float32)[..., None]
    expected = p.model(scaled).detach().numpy() * std + mean
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-4)
    assert 85 < got.to_numpy().mean() < 115  # the series' own units, not standard ones
    one = p.predict(torch.tensor(windows[3, :10]))
    assert one.to_numpy() == pytest.approx(got.to_numpy()[3:4], rel=1e-5)
    assert p.predict(windows[:, :10, None]).to_numpy() == pytest.approx(got.to_numpy(), rel=1e-6)
    inputs, out = tmp_path / "windows.csv", tmp_path / "out.csv"
    pd.DataFrame(windows[:, :10], columns=[f"t{i}" for i in range(10)]).assign(id="w").to_csv(inputs, index=False)
    dlcourse_eval([f"ckpt_path={run}", f"predict={inputs}", f"output={out}"])
    written = pd.read_csv(out)
    assert list(written.columns) == [*(f"t{i}" for i in range(10)), "id", "prediction_0", "prediction_1"]
    np.testing.assert_allclose(written[["prediction_0", "prediction_1"]].to_numpy(), got.to_numpy(), rtol=1e-5)
    assert "val/mse" in p.evaluate("val")
    for bad in (windows[:, :9], windows[:, :10, None].repeat(2, axis=2)):
        with pytest.raises(DataError, match=r"expected windows of 10 steps as an array \(N, 10\)") as e:
            p.predict(bad)
        one_line(e)


def test_an_empty_value_in_windows_or_pixel_rows_is_one_line_never_a_nan_prediction(series_run, image_run):
    windows = np.lib.stride_tricks.sliding_window_view(series_run[1], 10)[:4].copy()
    windows[2, 5] = np.nan
    with pytest.raises(DataError) as e:
        load(series_run[0]).predict(windows)
    assert "window 2 " in one_line(e) and "missing" in one_line(e)
    rows = pd.DataFrame(np.full((2, 3 * 16 * 16), 0.5))
    rows.iloc[1, 7] = np.nan  # a pixel row of a CSV with an empty cell
    with pytest.raises(DataError) as e:
        load(image_run[0]).predict(rows)
    assert "column 7 of the DataFrame" in one_line(e) and "line 3" in one_line(e)


def test_a_series_csv_gets_the_forecast_after_each_window(series_run, tmp_path):
    """The series as training read it (its column, rows in time order): each row gets the forecast made
    after the window that ends there; the last row's is the forecast into the future."""
    run, values = series_run
    series, out = tmp_path / "level_new.csv", tmp_path / "forecasts.csv"
    pd.DataFrame({"day": range(60), "level": values[-60:]}).to_csv(series, index=False)
    dlcourse_eval([f"ckpt_path={run}", f"predict={series}", f"output={out}"])
    written = pd.read_csv(out)
    assert list(written.columns) == ["day", "level", "forecast_1", "forecast_2"] and len(written) == 60
    assert written.loc[:8, "forecast_1"].isna().all() and written.loc[9:, "forecast_1"].notna().all()
    windows = np.lib.stride_tricks.sliding_window_view(values[-60:], 10)
    by_window = load(run).predict(windows)
    np.testing.assert_allclose(written.loc[9:, ["forecast_1", "forecast_2"]].to_numpy(), by_window.to_numpy(), rtol=1e-5)
    with pytest.raises(DataError, match="fewer than one window of n_steps=10") as e:
        load(run).predict(pd.DataFrame({"level": values[:5]}))
    one_line(e)


def test_dlcourse_eval_predicts_on_a_folder_and_on_one_image(image_run, tmp_path, capsys):
    run, pics = image_run
    out = tmp_path / "p.csv"
    dlcourse_eval([f"ckpt_path={run}", f"predict={pics}", f"output={out}"])
    written = pd.read_csv(out)
    files = sorted(pics.rglob("*.png"))
    assert list(written.columns) == ["path", "prediction", "prob_blue", "prob_red"] and len(written) == len(files)
    assert sorted(written["path"]) == sorted(map(str, files))
    assert written[["prob_blue", "prob_red"]].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    one = tmp_path / "one.csv"
    dlcourse_eval([f"ckpt_path={run}", f"predict={files[0]}", f"output={one}"])
    assert pd.read_csv(one).iloc[0].to_dict() == written.set_index("path").loc[str(files[0])].to_dict() | {"path": str(files[0])}
    assert f"wrote {len(files)} predictions to {out}" in capsys.readouterr().out


def test_dlcourse_eval_never_writes_over_the_runs_own_files(iris_run, tmp_path, capsys):
    """output= naming the checkpoint, metrics.json or a folder is one line, and every file stays as it was."""
    ckpt = load(iris_run).checkpoint
    before = {p: p.read_bytes() for p in [ckpt, iris_run / "metrics.json"]}
    for output, words in ((ckpt, f"the run's own {ckpt.name}"), (iris_run / "metrics.json", "the run's own metrics.json"),
                          (tmp_path, "is a folder")):
        for extra in ([], ["predict=examples/flowers.csv"]):
            with pytest.raises(SystemExit) as code:
                dlcourse_eval([f"ckpt_path={iris_run}", f"output={output}", *extra])
            err = capsys.readouterr().err
            assert code.value.code == 2 and words in err and err.count("\n") == 1, err
    assert {p: p.read_bytes() for p in before} == before


def test_a_copied_run_directory_evaluates_its_own_checkpoint(iris_run, tmp_path):
    """metrics.json's best_checkpoint is an absolute path into the original run: a copy uses its own file."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(iris_run, copy, symlinks=True)
    original = json.loads((iris_run / "metrics.json").read_text())["best_checkpoint"]
    assert Path(original).is_relative_to(iris_run)
    assert load(copy).checkpoint == copy / "checkpoints" / Path(original).name
    (copy / "metrics.json").write_text("{not json")  # a malformed metrics.json: one line naming it, not a guess
    with pytest.raises(CheckpointError, match="metrics.json"):
        load(copy)
    (copy / "metrics.json").unlink()  # none at all (a run still going): its last checkpoint
    assert load(copy).checkpoint == copy / "checkpoints" / "last.ckpt"
