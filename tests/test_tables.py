"""The user's own tables: preprocessing that real tables survive (constant columns, regression targets
in the hundreds, non-finite values, string features), and predictions in the table's own terms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlcourse.build import build_datamodule
from dlcourse.errors import DataError
from dlcourse.evaluate import main as evaluate
from dlcourse.train import train


def table(path: Path, n: int = 300, seed: int = 0, **extra) -> Path:
    """Two informative features a, b; the label is which side of a line the point is on."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    df = pd.DataFrame({"a": a, "b": b, **{k: v(rng, n) if callable(v) else v for k, v in extra.items()}})
    df["label"] = np.where(a + b > 0, "yes", "no")
    df.to_csv(path, index=False)
    return path


def test_a_column_constant_in_training_rows_is_harmless(cfg_factory, tmp_path):
    path = table(tmp_path / "t.csv", c=0.0)
    cfg = cfg_factory("data=csv", f"data.path={path}", "data.target=label", "trainer.max_epochs=30")
    dm = build_datamodule(cfg)
    test_rows = dm.split_indices(dm.load_table()[1])["test"]  # the split depends on the labels, not on c
    df = pd.read_csv(path)
    df.loc[test_rows[0], "c"] = 1.0  # c is 0 in every training row, 1 in one test row
    df.to_csv(path, index=False)
    dm = build_datamodule(cfg)
    dm.setup("fit")
    c_train = dm.splits["train"][0][:, 2]
    assert torch.equal(c_train, torch.zeros_like(c_train))  # the constant maps to 0: it moves no prediction
    others = torch.cat([dm.splits["val"][0][:, 2], dm.splits["test"][0][:, 2]])
    assert others.abs().max() == 1.0  # scale 1, not 1e8: the odd row stays an ordinary input
    assert train(cfg)["test"]["test/acc"] > 0.85  # and the run learns (chance is about 0.5)


def test_a_regression_target_in_the_hundreds_trains_and_reports_its_own_units(cfg_factory, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    y = 200 + 50 * x[:, 0] - 30 * x[:, 1] + rng.normal(0, 5, 400)  # about 100-300
    path = tmp_path / "r.csv"
    pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "y": y}).to_csv(path, index=False)
    cfg = cfg_factory("data=csv", f"data.path={path}", "data.target=y", "data.task=regression",
                      "trainer.max_epochs=60")
    metrics = train(cfg)
    assert 2 < metrics["test"]["test/mae"] < 15  # in the target's units: noise 5, spread of y about 58
    assert metrics["test"]["test/r2"] > 0.9
    new = tmp_path / "new.csv"
    pd.DataFrame({"x2": [0.0], "x1": [0.0], "x0": [0.0]}).to_csv(new, index=False)  # any column order
    evaluate([f"ckpt_path={cfg.paths.output_dir}", f"predict={new}", f"output={tmp_path / 'out.csv'}"])
    assert abs(pd.read_csv(tmp_path / "out.csv")["prediction"][0] - 200) < 15


@pytest.mark.parametrize(("column", "bad", "says"), [  # a gap in a feature: with data.missing=error only
    ("a", np.inf, "column 'a'"), ("b", np.nan, "column 'b'.*data.missing=error"), ("label", None, "target column 'label'")])
def test_a_missing_or_infinite_value_is_one_line_naming_the_column(tmp_path, column, bad, says):
    path = table(tmp_path / "t.csv")
    df = pd.read_csv(path)
    df.loc[5, column] = bad
    df.to_csv(path, index=False)
    from dlcourse.data.csv import CSVDataModule

    with pytest.raises(DataError, match=says) as e:
        CSVDataModule(path=str(path), target="label", missing="error").setup("fit")
    assert "line 7" in str(e.value)  # the header is line 1


def test_string_features_are_one_hot_and_predict_reuses_the_categories(cfg_factory, tmp_path):
    colours = lambda rng, n: rng.choice(["red", "green", "blue"], size=n)  # noqa: E731
    path = table(tmp_path / "t.csv", colour=colours)
    cfg = cfg_factory("data=csv", f"data.path={path}", "data.target=label", "trainer.max_epochs=20")
    metrics = train(cfg)
    dm = build_datamodule(cfg)
    dm.setup("fit")
    assert dm.input_shape == (5,) and dm.categories == {"colour": ["blue", "green", "red"]}
    assert metrics["test"]["test/acc"] > 0.85
    new = tmp_path / "new.csv"
    pd.DataFrame({"a": [2.0, -2.0], "b": [2.0, -2.0], "colour": ["green", "red"]}).to_csv(new, index=False)
    out = tmp_path / "out.csv"
    evaluate([f"ckpt_path={cfg.paths.output_dir}", f"predict={new}", f"output={out}"])
    assert list(pd.read_csv(out)["prediction"]) == ["yes", "no"]
    pd.DataFrame({"a": [0.0], "b": [0.0], "colour": ["purple"]}).to_csv(new, index=False)
    with pytest.raises(SystemExit) as exc:
        evaluate([f"ckpt_path={cfg.paths.output_dir}", f"predict={new}", f"output={out}"])
    assert exc.value.code == 2


def test_too_many_categories_or_numbers_with_a_typo_are_one_line(tmp_path):
    from dlcourse.data.csv import CSVDataModule

    ids = lambda rng, n: [f"id{i}" for i in range(n)]  # noqa: E731
    with pytest.raises(DataError, match="300 different values, more than data.max_categories=50"):
        CSVDataModule(path=str(table(tmp_path / "ids.csv", id=ids)), target="label").setup("fit")
    typo = table(tmp_path / "typo.csv")
    df = pd.read_csv(typo)
    df["a"] = df["a"].astype(object)
    df.loc[3, "a"] = "1,5"
    df.to_csv(typo, index=False)
    with pytest.raises(DataError, match=r"column 'a' .* holds numbers but also '1,5' \(line 5\)"):
        CSVDataModule(path=str(typo), target="label").setup("fit")


def test_integer_labels_work_like_strings(cfg_factory, tmp_path):
    path = table(tmp_path / "t.csv")
    df = pd.read_csv(path)
    df["label"] = (df["label"] == "yes").astype(int) + 1  # 1 and 2
    df.to_csv(path, index=False)
    metrics = train(cfg_factory("data=csv", f"data.path={path}", "data.target=label", "trainer.max_epochs=20"))
    assert metrics["class_names"] == ["1", "2"] and metrics["test"]["test/acc"] > 0.85
    saved = json.loads((Path(metrics["run_dir"]) / "metrics.json").read_text())
    assert saved["task"] == "binary"


def test_true_false_features_and_semicolons_or_tabs_read_as_the_same_table(tmp_path):
    """Spreadsheets write `;` in many locales, .tsv files tabs; True/False is a 0/1 feature."""
    from dlcourse.data.csv import CSVDataModule

    flag = lambda rng, n: rng.choice([True, False], size=n)  # noqa: E731
    comma = table(tmp_path / "t.csv", flag=flag)
    df = pd.read_csv(comma)
    df.to_csv(tmp_path / "t_semi.csv", sep=";", index=False)
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    inputs = []
    for path in (comma, tmp_path / "t_semi.csv", tmp_path / "t.tsv"):
        dm = CSVDataModule(path=str(path), target="label", standardize=False)
        dm.setup("fit")
        assert dm.feature_names == ["a", "b", "flag"] and dm.categories == {}
        inputs.append(dm.splits["train"][0])
    assert set(inputs[0][:, 2].tolist()) == {0.0, 1.0}
    assert torch.equal(inputs[0], inputs[1]) and torch.equal(inputs[0], inputs[2])


def test_a_fractional_target_for_classification_names_the_regression_switch(tmp_path):
    from dlcourse.data.csv import CSVDataModule

    path = table(tmp_path / "t.csv")
    df = pd.read_csv(path)
    df["price"] = df["a"] * 10 + 100.5
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="target column 'price' holds fractional numbers.*data.task=regression"):
        CSVDataModule(path=str(path), target="price").setup("fit")
    df["price"] = (df["a"] * 10).round().astype(int) + 100  # whole numbers, too many rare ones for classes
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="if it is a quantity, set data.task=regression"):
        CSVDataModule(path=str(path), target="price").setup("fit")


def test_binary_predictions_carry_a_probability_per_class(cfg_factory, tmp_path):
    path = table(tmp_path / "t.csv")
    cfg = cfg_factory("data=csv", f"data.path={path}", "data.target=label", "trainer.max_epochs=5")
    train(cfg)
    new, out = tmp_path / "new.csv", tmp_path / "out.csv"
    pd.DataFrame({"a": [2.0, -2.0], "b": [2.0, -2.0]}).to_csv(new, sep=";", index=False)
    evaluate([f"ckpt_path={cfg.paths.output_dir}", f"predict={new}", f"output={out}"])
    got = pd.read_csv(out)
    assert list(got["prediction"]) == ["yes", "no"]
    assert np.allclose(got["prob_no"] + got["prob_yes"], 1.0) and (got["prob_yes"][0] > 0.5 > got["prob_yes"][1])
