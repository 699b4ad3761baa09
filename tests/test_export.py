"""dlcourse-export (dlcourse.exporting): one ONNX / TorchScript file per model that takes raw inputs (a table's
features, [0, 1] pixels, series windows in their own units) and gives what `dlcourse-eval predict=` and
`Predictor.predict` give, with a JSON sidecar; checked before it is written, never half written."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from conftest import image_folder_run, level_series_run, one_line, run_here, trained, write_table
from dlcourse.data.image_folder import image_files, read_image
from dlcourse.errors import DlcourseError
from dlcourse.evaluate import main as dlcourse_eval
from dlcourse.exporting import export
from dlcourse.exporting import main as dlcourse_export
from dlcourse.predictor import load

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> tuple[Path, Path]:
    return image_folder_run(tmp_path_factory, "model=cnn", "trainer.max_epochs=2")


@pytest.fixture(scope="module")
def series_run(tmp_path_factory) -> tuple[Path, np.ndarray]:
    return level_series_run(tmp_path_factory, "experiment=sine_lstm", "model.hidden=[8]", "trainer.max_epochs=2")


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    return session.run(None, {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]


def run_torchscript(path: Path, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # torch.jit.load is deprecated in favour of torch.export: it still loads
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def both_formats(run, tmp_path: Path) -> dict:
    """The run exported to ONNX (dlcourse.export) and TorchScript (a loaded Predictor): name -> runner."""
    onnx_path = export(run, tmp_path / "model.onnx", "onnx")
    ts_path = export(load(run), tmp_path / "model.pt", format="torchscript")
    assert onnx_path == tmp_path / "model.onnx" and ts_path == tmp_path / "model.pt"
    return {"onnx": lambda x: run_onnx(onnx_path, x), "torchscript": lambda x: run_torchscript(ts_path, x)}


def sidecar(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".json").read_text())


# -- a table ---------------------------------------------------------------------------------------------
def test_iris_exports_give_the_probabilities_dlcourse_eval_writes(iris_run, tmp_path):
    runners = both_formats(iris_run, tmp_path)
    rows = pd.DataFrame([[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.8, 2.3], [5.7, 2.8, 4.1, 1.3], [6.3, 2.9, 5.6, 1.8]],
                        columns=IRIS)
    rows[IRIS[::-1]].to_csv(tmp_path / "flowers.csv", index=False)  # dlcourse-eval reads columns by name
    dlcourse_eval([f"ckpt_path={iris_run}", f"predict={tmp_path / 'flowers.csv'}", f"output={tmp_path / 'pred.csv'}"])
    expected = pd.read_csv(tmp_path / "pred.csv")[[f"prob_{c}" for c in CLASSES]].to_numpy()
    x = rows.to_numpy(np.float32)  # raw features in training column order
    for name, run in runners.items():
        got = run(x)
        assert got.shape == (4, 3), name
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=0, err_msg=name)
        np.testing.assert_allclose(run(x[1:2]), expected[1:2], atol=TOL, rtol=0, err_msg=name)  # any batch size
        np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)
    assert not np.allclose(expected, expected[:1])  # the rows differ: a constant output would not pass

    info = sidecar(tmp_path / "model.onnx")
    assert info["format"] == "onnx" and info["classes"] == CLASSES and info["task"] == "multiclass"
    assert info["input"]["name"] == "input" and info["input"]["dtype"] == "float32"
    assert info["input"]["shape"] == [-1, 4] and info["input"]["columns"] == IRIS
    assert info["output"]["shape"] == [-1, 3] and str(CLASSES) in info["output"]["meaning"]
    assert "median" in info["preprocessing"][0] and "standardise" in info["preprocessing"][1] and info["dlcourse_version"]
    assert Path(info["checkpoint"]).is_file() and info["check"]["max_abs_diff"] <= TOL
    assert sidecar(tmp_path / "model.pt")["format"] == "torchscript"


def test_a_raw_setosa_row_through_onnx_is_setosa(iris_run, tmp_path):
    path = export(iris_run, tmp_path / "iris.onnx")  # the format from the suffix
    probs = run_onnx(path, np.array([[5.1, 3.5, 1.4, 0.2]], np.float32))[0]
    assert sidecar(path)["classes"][int(probs.argmax())] == "setosa", probs


# -- images and series -------------------------------------------------------------------------------------
def test_image_cnn_exports_take_pixels_and_match_the_predictor(image_run, tmp_path):
    run, pics = image_run
    runners = both_formats(run, tmp_path)
    p = load(run)
    files = image_files(pics)
    pixels = torch.stack([read_image(f, (3, 16, 16)) for f in files]).numpy()  # [0, 1], N x C x H x W
    from_files = p.predict(pics)[[f"prob_{c}" for c in p.class_names]].to_numpy()  # files read and resized by dlcourse
    from_array = p.predict(pixels)[[f"prob_{c}" for c in p.class_names]].to_numpy()
    np.testing.assert_allclose(from_array, from_files, atol=1e-6)
    for name, run_file in runners.items():
        got = run_file(pixels)
        assert got.shape == (len(files), 2), name
        np.testing.assert_allclose(got, from_files, atol=TOL, rtol=0, err_msg=name)
    info = sidecar(tmp_path / "model.onnx")
    assert info["input"]["shape"] == [-1, 3, 16, 16] and info["classes"] == p.class_names == ["blue", "red"]
    assert "normalise each channel" in info["preprocessing"][0]


def test_series_lstm_exports_forecast_in_the_series_units(series_run, tmp_path):
    run, values = series_run
    runners = both_formats(run, tmp_path)
    windows = np.stack([values[i:i + 10] for i in range(0, 200, 7)]).astype(np.float32)  # raw units, around 100
    pd.DataFrame(windows, columns=[f"t{i}" for i in range(10)]).to_csv(tmp_path / "windows.csv", index=False)
    dlcourse_eval([f"ckpt_path={run}", f"predict={tmp_path / 'windows.csv'}", f"output={tmp_path / 'pred.csv'}"])
    columns = [f"prediction_{j}" for j in range(20)]  # sine_lstm is seq2seq: after each of 10 steps, the next 2
    expected = pd.read_csv(tmp_path / "pred.csv")[columns].to_numpy()
    np.testing.assert_allclose(load(run).predict(windows)[columns], expected, rtol=1e-6)
    assert 80 < expected.mean() < 120  # forecasts in the series' own units
    for name, run_file in runners.items():
        got = run_file(windows)
        assert got.shape == (len(windows), 20), name
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=TOL, err_msg=name)
        np.testing.assert_allclose(run_file(windows[:1]), expected[:1], atol=TOL, rtol=TOL, err_msg=name)
        # data.normalize=window (the default) is in the graph: a window 50 higher is forecast 50 higher
        np.testing.assert_allclose(run_file(windows + 50), expected + 50, atol=1e-3, rtol=1e-5, err_msg=name)
    info = sidecar(tmp_path / "model.onnx")
    assert info["input"]["shape"] == [-1, 10] and info["output"]["shape"] == [-1, 20] and "classes" not in info
    assert "series' own units" in info["output"]["meaning"] and "its own first value" in info["preprocessing"][-1]


# -- what is refused, in one line ------------------------------------------------------------------------------
def test_a_table_with_a_string_column_is_refused_in_one_line(tmp_path_factory, tmp_path, capsys):
    table = write_table(tmp_path / "animals.csv")
    df = pd.read_csv(table)
    df.insert(2, "colour", np.where(np.arange(len(df)) % 2, "brown", "grey"))
    df.to_csv(table, index=False)
    run = trained(tmp_path_factory, "experiment=iris_mlp", "data=csv", f"data.path={table}", "data.target=label")
    with pytest.raises(DlcourseError) as error:
        export(run, tmp_path / "animals.onnx")
    assert "string columns (colour)" in one_line(error) and "cannot encode" in str(error.value)
    with pytest.raises(SystemExit) as code:
        dlcourse_export([f"ckpt_path={run}", f"output={tmp_path / 'animals.pt'}"])
    assert code.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "colour" in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["animals.csv"]  # nothing written


def test_an_existing_output_is_kept_unless_overwrite(iris_run, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    out.write_text("mine")
    with pytest.raises(DlcourseError) as error:
        export(iris_run, out)
    assert "exists already" in one_line(error) and "overwrite=true" in str(error.value)
    assert out.read_text() == "mine" and not (tmp_path / "model.onnx.json").exists()
    with pytest.raises(SystemExit) as code:
        dlcourse_export([f"ckpt_path={iris_run}", f"output={out}"])
    assert code.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    dlcourse_export([f"ckpt_path={iris_run}", f"output={out}", "overwrite=true"])
    assert run_onnx(out, np.ones((2, 4), np.float32)).shape == (2, 3)
    for bad, words in ((tmp_path, "is a directory"), (load(iris_run).checkpoint, "the checkpoint itself")):
        with pytest.raises(DlcourseError) as error:
            export(iris_run, bad, "torchscript")
        assert words in one_line(error)


def test_a_file_that_fails_its_check_is_never_written(iris_run, tmp_path, monkeypatch):
    import dlcourse.exporting as ex

    real = ex.input_affine  # the graph's constants, not the check's: the check must catch them
    monkeypatch.setattr(ex, "input_affine", lambda p, dm=None: (lambda m, s, t: (m + 0.5, s, t))(*real(p, dm)))
    out = tmp_path / "model.pt"
    out.write_text("mine")
    for fmt, path in (("onnx", tmp_path / "new.onnx"), ("torchscript", out)):
        with pytest.raises(DlcourseError) as error:
            export(iris_run, path, fmt, overwrite=True)  # a graph whose constants are wrong
        assert "differs from dlcourse's predictions" in one_line(error)
    assert out.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary file, no sidecar left


def test_the_dlcourse_export_command(iris_run, tmp_path, capfd):
    script = Path(sys.executable).parent / "dlcourse-export"
    out = tmp_path / "cli" / "iris.pt"
    result = subprocess.run([str(script), f"ckpt_path={iris_run}", f"output={out}"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.is_file() and sidecar(out)["format"] == "torchscript" and "wrote" in result.stdout
    assert run_torchscript(out, np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)).shape == (1, 3)
    bad = run_here([f"ckpt_path={iris_run}", "format=keras"], tmp_path, capfd, module="dlcourse.exporting")
    assert bad.returncode == 2 and bad.stderr.startswith("error: format='keras' is invalid")
