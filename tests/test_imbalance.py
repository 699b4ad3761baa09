"""Imbalanced classes: balanced accuracy and each class's recall in the test metrics (metrics.json, the
console summary), `task.class_weight=balanced` weighting the loss as scikit-learn's class_weight does, on a
table with 6-8% positives that the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, make_cfg

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_imbalanced(path: Path, n: int = 600) -> Path:
    """Two features; `yes` where the first plus noise is high: about 7% positives."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = x[:, 0] + 0.8 * rng.normal(size=n) > 1.9
    lines = ["a,b,label", *(f"{a:.3f},{b:.3f},{'yes' if t else 'no'}" for (a, b), t in zip(x, y, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tmp_path: Path, name: str, *extra: str) -> dict:
    from dlcourse.train import train

    cfg = make_cfg([*FAST, "experiment=iris_mlp", "data=csv", f"data.path={tmp_path / 'imbalanced.csv'}", "data.target=label",
                    "logger=none", "trainer.max_epochs=10", "~callbacks.figures", *extra], tmp_path / name)
    train(cfg)
    return json.loads((tmp_path / name / "metrics.json").read_text())


def test_balanced_weights_raise_the_balanced_accuracy_of_an_imbalanced_table(tmp_path, capsys):
    share = np.mean([line.endswith("yes") for line in write_imbalanced(tmp_path / "imbalanced.csv").read_text().split()])
    assert 0.05 < share < 0.09
    plain, weighted = run(tmp_path, "plain"), run(tmp_path, "weighted", "task.class_weight=balanced")
    printed = capsys.readouterr().out
    for key in ("test/balanced_acc", "test/recall_no", "test/recall_yes"):
        assert key in plain["test"] and key in weighted["test"]
    test = plain["test"]
    assert test["test/balanced_acc"] == pytest.approx((test["test/recall_no"] + test["test/recall_yes"]) / 2)
    assert test["test/recall_yes"] == pytest.approx(test["test/recall"]) and "val/balanced_acc" in plain["val"]
    assert weighted["test"]["test/balanced_acc"] > max(plain["test"]["test/balanced_acc"], 0.5)
    assert weighted["test"]["test/recall_yes"] > plain["test"]["test/recall_yes"]
    assert "balanced_acc" in printed and "recall_yes" in printed  # the console summary's rows


def test_balanced_weights_are_scikit_learns_and_weight_each_example(tmp_path):
    from sklearn.utils.class_weight import compute_class_weight

    from dlcourse.build import build_datamodule, build_task
    from dlcourse.metrics import compute_loss

    write_imbalanced(tmp_path / "imbalanced.csv")
    for given in ("balanced", [1.0, 4.0]):
        cfg = make_cfg(["experiment=iris_mlp", "data=csv", f"data.path={tmp_path / 'imbalanced.csv'}",
                        "data.target=label", f"task.class_weight={json.dumps(given).replace(' ', '')}"], tmp_path / "r")
        dm = build_datamodule(cfg)
        dm.setup()
        task = build_task(cfg, dm)
        y = dm.splits["train"][1].long().numpy()
        expected = compute_class_weight("balanced", classes=np.arange(2), y=y) if given == "balanced" else given
        np.testing.assert_allclose(task.loss_weight.numpy(), expected, rtol=1e-6)
    out, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    w = torch.tensor([0.5, 2.0, 1.0])
    per = torch.nn.functional.cross_entropy(out, y, reduction="none")
    assert float(compute_loss("cross_entropy", out, y, w)) == pytest.approx(float((per * w[y]).mean()))
    assert float(compute_loss("bce", out[:, :1], y.clamp(max=1), w[:2])) == pytest.approx(float(
        (torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], y.clamp(max=1).float(), reduction="none")
         * w[:2][y.clamp(max=1)]).mean()))
