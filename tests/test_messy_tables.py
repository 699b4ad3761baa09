"""Real users' messy tables with data=csv: gaps in numbers and words (imputed as a scikit-learn pipeline
would, in training, prediction and export), a category spelled None, decimal commas, and the inputs
that used to give a silently wrong model (the target among its own features, a value beyond float32,
an ID column) now a one-line error or a warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import trained
from dlcourse.data.csv import MISSING, CSVDataModule
from dlcourse.errors import ConfigError, DataError
from dlcourse.predictor import load

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gappy(path: Path, n: int = 240, seed: int = 0) -> Path:
    """a, b numbers with ~20% empty cells in a; colour words (one spelled None) with a few empty cells."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "None", "blue"], size=n)
    label = np.where(a + b + (colour == "None") > 0.5, "yes", "no")
    cells = pd.DataFrame({"a": a.round(4).astype(str), "b": b.round(4), "colour": colour, "label": label})
    cells.loc[rng.random(n) < 0.2, "a"] = ""
    cells.loc[[3, 50, 120], "colour"] = ""
    cells.loc[7, "a"] = "NA"  # a missing-value word in a numeric column is a gap
    cells.to_csv(path, index=False)
    return path


def dm_of(path: Path, **kw) -> CSVDataModule:
    dm = CSVDataModule(path=str(path), target=kw.pop("target", "label"), **kw)
    dm.setup("fit")
    return dm


def test_gaps_in_numbers_and_words_train_by_default_and_predict_on_rows_with_gaps(tmp_path_factory, tmp_path):
    path = gappy(tmp_path / "t.csv")
    dm = dm_of(path)
    assert dm.categories["colour"] == ["None", "blue", "red", MISSING]  # None is a colour here, not a gap
    assert dm.indicate == [0]  # a had gaps in training: one "was missing" input, after the 5 encoded columns
    assert dm.input_shape == (1 + 1 + 4 + 1,) and torch.isfinite(dm.splits["train"][0]).all()

    run = trained(tmp_path_factory, "experiment=iris_mlp", "data=csv", f"data.path={path}", "data.target=label",
                  "trainer.max_epochs=3")
    new = tmp_path / "new.csv"
    new.write_text("colour,b,a\n,0.5,\nNone,,1.0\nred,-1,NA\n")  # gaps in every column, b never had one
    out = load(run).predict(new)
    probs = out[["prob_no", "prob_yes"]].to_numpy()
    assert np.isfinite(probs).all() and np.allclose(probs.sum(1), 1) and set(out["prediction"]) <= {"no", "yes"}
    # as model inputs, before scaling: the training median for a, 1 in a's "was missing" input, (missing) colour
    dm = load(run)._dm
    inputs = dm.inputs_from(pd.read_csv(new, keep_default_na=False)) * dm.std + dm.mean
    assert torch.allclose(inputs[0], torch.tensor([float(dm.fill[0]), 0.5, 0, 0, 0, 1, 1]), atol=1e-5)
    assert inputs[1, 1] == dm.fill[1] and inputs[1, 2] == 1 and inputs[1, 6] == 0  # b imputed; None is a colour


def test_imputing_and_scaling_match_scikit_learns_pipeline(tmp_path):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    path = gappy(tmp_path / "t.csv")
    dm = dm_of(path, features=["a", "b"])
    raw = dm._raw["train"][0].double().numpy()
    expected = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()).fit_transform(raw)
    np.testing.assert_allclose(dm.splits["train"][0].numpy(), expected, atol=1e-5)  # ddof=0, as StandardScaler
    val = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()).fit(raw)
    np.testing.assert_allclose(dm.splits["val"][0].numpy(), val.transform(dm._raw["val"][0].double().numpy()), atol=1e-5)


def test_a_gap_only_outside_the_training_rows_is_imputed_without_an_indicator(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": np.arange(60.0) % 7, "b": np.arange(60.0) % 5, "label": ["x", "y"] * 30}).to_csv(path, index=False)
    test_row = dm_of(path).split_indices(torch.tensor([0, 1] * 30))["test"][0]
    df = pd.read_csv(path)
    df["b"] = df["b"].astype(object)
    df.loc[test_row, "b"] = ""
    df.to_csv(path, index=False)
    dm = dm_of(path)
    assert dm.indicate == [] and dm.input_shape == (2,) and torch.isfinite(dm.splits["test"][0]).all()


def test_missing_error_stops_at_the_first_gap_in_training_and_in_prediction(tmp_path_factory, tmp_path):
    path = gappy(tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"column 'colour' of .* missing value at line 5 \(data.missing=error\)") as e:
        dm_of(path, missing="error")
    assert "\n" not in str(e.value)
    clean = tmp_path / "clean.csv"
    pd.read_csv(path).dropna().to_csv(clean, index=False)  # pandas' reading drops the None colour: a clean table
    run = trained(tmp_path_factory, "experiment=iris_mlp", "data=csv", f"data.path={clean}", "data.target=label",
                  "data.missing=error")
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,colour\n1,2,red\n1,,red\n")
    with pytest.raises(DataError, match=r"column 'b' of .*rows.csv has a missing value at line 3"):
        load(run).predict(rows)
    run = trained(tmp_path_factory, "experiment=iris_mlp", "data=csv", f"data.path={clean}", "data.target=label")
    rows.write_text("a,b,colour\n1,2,red\n1,2,\n")  # colour had no gaps in training: no category to give it
    with pytest.raises(DataError, match=r"column 'colour' .* missing value at line 3 \(the training table had no gaps"):
        load(run).predict(rows)


def test_na_values_words_and_decimal_commas(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b;kind;label\n" + "".join(f"{i % 7},5;{i % 3},25;{'?' if i % 9 == 0 else 'k' + str(i % 2)};"
                                                  f"{'xy'[i % 2]}\n" for i in range(60)))
    dm = dm_of(path, na_values=["?"])
    assert dm.categories == {"kind": ["k0", "k1", MISSING]}  # ? is a gap; 1,5 and 2,25 are numbers
    assert dm.input_shape == (2 + 3,) and dm._raw["train"][0][:, :2].max() > 6
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("a;b;label\n" + "".join(f"{i},5;{i}.5;{'xy'[i % 2]}\n" for i in range(30)))
    with pytest.raises(ConfigError, match=r"data.decimal='auto'.*'0,5' in column 'a'.*'0.5' in column 'b'.*data.decimal"):
        dm_of(mixed)
    assert dm_of(mixed, decimal=".").categories["a"][:2] == ["0,5", "1,5"]  # as asked: words


@pytest.mark.parametrize(("cells", "kw", "says"), [
    ("a,b,label\n" + "1,2,x\n3,4,y\n" * 20, {"features": ["a", "label"]}, r"data.features=\['a', 'label'\].*target"),
    ("label\n" + "x\ny\n" * 20, {}, "no column besides the target 'label'"),
    ("a,b,label\n" + "1,2,x\n3,4,y\n" * 5 + "1e39,2,x\n" + "1,2,x\n3,4,y\n" * 5, {}, r"column 'a' .*1e\+39 at line 12"),
    ("a,b,label\n" + "1,,x\n3,,y\n" * 20, {}, "column 'b' .* is empty in every row"),
], ids=["target among the features", "only the target", "beyond float32", "an empty column"])
def test_silently_wrong_tables_are_one_line(tmp_path, cells, kw, says):
    path = tmp_path / "t.csv"
    path.write_text(cells)
    with pytest.raises((DataError, ConfigError), match=says) as e:
        dm_of(path, **kw)
    assert "\n" not in str(e.value)


def test_an_id_column_is_named_in_a_warning(tmp_path):
    path = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"customer_id": np.arange(100, 160), "x": rng.normal(size=60), "label": ["a", "b"] * 30}).to_csv(
        path, index=False)
    with pytest.warns(UserWarning, match=r"'customer_id' looks like a row ID.*data.features"):
        dm_of(path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dm_of(path, features=["x"])  # x is no ID, and customer_id is left out
    assert not [w for w in record if "row ID" in str(w.message)]


def test_folds_refit_the_imputation_on_their_own_training_rows(tmp_path):
    path = gappy(tmp_path / "t.csv")
    dm = CSVDataModule(path=str(path), target="label")
    dm.use_fold(1, 3)
    dm.setup("fit")
    x = dm.splits["train"][0]
    assert torch.isfinite(x).all() and x.shape[1] == 7 and abs(float(x[:, -1].mean())) < 1e-5


def test_an_exported_table_model_imputes_a_nan_as_the_predictor_does(tmp_path_factory, tmp_path):
    import onnxruntime as ort

    from dlcourse.exporting import export

    path = gappy(tmp_path / "t.csv")
    pd.read_csv(path, keep_default_na=False).drop(columns="colour").to_csv(path, index=False)
    run = trained(tmp_path_factory, "experiment=iris_mlp", "data=csv", f"data.path={path}", "data.target=label")
    onnx = export(run, tmp_path / "m.onnx")
    x = np.array([[np.nan, 0.5], [0.2, -1.0], [np.nan, np.nan]], np.float32)
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    expected = load(run).predict(x)[["prob_no", "prob_yes"]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert not np.allclose(got[0], got[1])


def test_a_row_with_an_empty_cell_is_imputed_or_one_line_never_a_silent_guess(tmp_path_factory, tmp_path):
    run = trained(tmp_path_factory, "experiment=iris_mlp")
    rows = tmp_path / "rows.csv"
    rows.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.9,,5.8,2.3\n")
    p = load(run)
    probs = p.predict(rows).filter(like="prob_").to_numpy()
    assert probs.shape == (2, 3) and np.isfinite(probs).all()  # imputed with the training median
    p._dm.fill = None  # as a checkpoint saved before imputation existed
    with pytest.raises(DataError, match=r"column 'sepal_width' of .*rows.csv has a missing value at line 3"):
        p.predict(rows)
