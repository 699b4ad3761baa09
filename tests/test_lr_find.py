"""The learning-rate finder (`lr_find.*`, dlcourse.lr_finder): Lightning's Tuner.lr_find on the Task's own
optimisation path, its figure and record, applying the suggestion, and its config checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import write_pngs
from dlcourse.errors import LrFindError
from dlcourse.train import train

FIND = ["lr_find.enabled=true", "lr_find.num_training=30"]
IRIS = ["experiment=iris_mlp", "trainer.max_epochs=2"]


def run_dir(cfg) -> Path:
    return Path(cfg.paths.output_dir)


def last_checkpoint(cfg) -> dict:
    return torch.load(run_dir(cfg) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def assert_figure_written(cfg, low: float, high: float, record: dict) -> None:
    png = run_dir(cfg) / "figures" / "lr_find.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    events = EventAccumulator(str(run_dir(cfg)), size_guidance={"images": 0})
    events.Reload()
    assert "figures/lr_find" in events.Tags()["images"]
    (image,) = events.Images("figures/lr_find")
    assert image.encoded_image_string == png.read_bytes()  # rendered once: the file is the TensorBoard image
    assert low <= record["suggestion"] <= high


def test_tabular_run_finds_and_trains_with_the_suggestion(cfg_factory, capsys):
    cfg = cfg_factory(*IRIS, *FIND)
    metrics = train(cfg)
    found = metrics["lr_find"]
    assert found["applied"] is True and found["range"] == [1e-06, 1.0] and found["steps"] == 30
    assert "lrs" not in found and "losses" not in found  # the curve is the figure, not metrics.json
    assert_figure_written(cfg, 1e-06, 1.0, found)
    assert metrics["status"] == "completed" and metrics["epochs"] == 2 and metrics["test"]
    (group,) = last_checkpoint(cfg)["optimizer_states"][0]["param_groups"]
    assert group["lr"] == found["suggestion"] != cfg.optimizer.lr  # trained with it (Adam, no schedule)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("lr_find:"))
    assert f"suggested optimizer.lr={found['suggestion']:.3g} (tried 1e-06..1 over 30 steps)" in line
    assert line.endswith(f"figure: {run_dir(cfg) / 'figures' / 'lr_find.png'}")


def test_image_run_with_onecycle_takes_its_max_lr_from_the_suggestion(cfg_factory, tmp_path):
    write_pngs(tmp_path / "pics")
    cfg = cfg_factory("experiment=mnist_cnn", "data=image_folder", f"data.root={tmp_path / 'pics'}",
                      "data.image_size=16", "model.channels=[8,pool]", "data.batch_size=4", "trainer.max_epochs=2",
                      "scheduler=onecycle", *FIND, "lr_find.min_lr=1e-5", "lr_find.max_lr=0.5")
    metrics = train(cfg)
    found = metrics["lr_find"]
    assert_figure_written(cfg, 1e-5, 0.5, found)
    (group,) = last_checkpoint(cfg)["optimizer_states"][0]["param_groups"]
    assert group["max_lr"] == found["suggestion"] and found["applied"]


@pytest.mark.parametrize("data", [IRIS, ["experiment=mnist_cnn", "data=image_folder", "data.image_size=16",
                                         "model.channels=[8,pool]", "data.batch_size=4", "data.augment=true"]],
                         ids=["iris", "images_augmented"])
def test_a_suggestion_not_applied_leaves_the_run_exactly_as_without_the_finder(cfg_factory, tmp_path, data):
    """The finder's steps are undone: weights, the global RNG (augmentation draws from it), batch order."""
    overrides = [*data, "trainer.max_epochs=2", "logger=none"]
    if "data=image_folder" in data:
        write_pngs(tmp_path / "pics")
        overrides.append(f"data.root={tmp_path / 'pics'}")
    plain = train(cfg_factory(*overrides))
    cfg = cfg_factory(*overrides, *FIND, "lr_find.apply=false")
    found = train(cfg)
    assert found["lr_find"]["applied"] is False
    assert (run_dir(cfg) / "figures" / "lr_find.png").is_file()
    assert found["val"] == plain["val"] and found["test"] == plain["test"] and found["epochs"] == plain["epochs"]


def test_finder_only_run_writes_its_result_and_trains_nothing(cfg_factory):
    cfg = cfg_factory(*IRIS, *FIND, "lr_find.train=false")
    metrics = train(cfg)
    assert metrics["status"] == "lr_find" and metrics["epochs"] == 0
    assert metrics["val"] == {} and metrics["test"] == {} and metrics["best_checkpoint"] is None
    assert metrics["lr_find"]["applied"] is False and 1e-06 <= metrics["lr_find"]["suggestion"] <= 1.0
    assert json.loads((run_dir(cfg) / "metrics.json").read_text())["status"] == "lr_find"
    assert not list(run_dir(cfg).rglob("*.ckpt"))
    assert_figure_written(cfg, 1e-06, 1.0, metrics["lr_find"])


def test_lightnings_finder_steps_the_tasks_optimizer_through_the_rates(cfg_factory, monkeypatch, tmp_path):
    """What was broken: under the Task's manual, grouped optimisation Lightning never stepped the finder's
    schedule and read no loss (every rate the same, every loss nan). Through dlcourse.lr_finder each
    training_step call is one step at a higher rate, and the weights are back as they were."""
    from lightning.pytorch.tuner import Tuner

    from dlcourse.lr_finder import find_lr, finder_trainer
    from dlcourse.task import Task
    from dlcourse.train import prepare

    cfg = cfg_factory(*IRIS, "scheduler=onecycle", *FIND, "lr_find.max_lr=0.1", "logger=none")
    prepared = prepare(cfg)
    seen, step = [], Task.training_step

    def spy(self, batch, idx):
        seen.append((self.trainer.optimizers[0].param_groups[0]["lr"], len(batch) if isinstance(batch, list) else 1))
        return step(self, batch, idx)

    monkeypatch.setattr(Task, "training_step", spy)
    weights = {k: v.clone() for k, v in prepared.task.state_dict().items()}
    found = find_lr(prepared, cfg, tmp_path)
    lrs = found["lrs"]
    assert len(lrs) == 30 and all(a < b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[0] == pytest.approx(1e-06) and lrs[-1] == pytest.approx(0.1)
    assert [lr for lr, _ in seen] == pytest.approx(lrs) and {n for _, n in seen} == {1}  # one batch a call
    assert all(torch.isfinite(torch.tensor(found["losses"])))
    assert all(torch.equal(v, weights[k]) for k, v in prepared.task.state_dict().items())
    assert prepared.task.loop.finding_lr is False and prepared.task.loop.steps_per_call == "auto"

    # Lightning's finder on the Task as it trains normally: a rate per call of several steps, and no loss.
    plain = Tuner(finder_trainer(cfg, str(tmp_path))).lr_find(prepared.task, datamodule=prepared.dm, num_training=30,
                                                              update_attr=False)
    assert len(plain.results["lr"]) < 30 and all(math.isnan(x) for x in plain.results["loss"])
    assert plain.suggestion() is None


def test_a_loss_that_diverges_at_once_is_one_line(cfg_factory):
    cfg = cfg_factory(*IRIS, *FIND, "optimizer=sgd", "lr_find.min_lr=1e4", "lr_find.max_lr=1e8", "logger=none")
    with pytest.raises(LrFindError) as e:
        train(cfg)
    assert "lr_find: no suggestion" in str(e.value) and "\n" not in str(e.value)
    assert "lr_find.min_lr" in str(e.value) and (run_dir(cfg) / "figures" / "lr_find.png").is_file()
