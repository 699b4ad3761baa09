"""The core on the tabular experiments: composition, learning, outputs, loader, optimisers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import CONF_DIR
from dlcourse.config.validate import validate
from dlcourse.data.loader import TensorLoader
from dlcourse.train import train

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
SMALL_GAUSSIAN = ["experiment=gaussian_mlp", "data.n_train=400", "data.n_val=200", "data.n_test=400"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(cfg_factory, name):
    cfg = cfg_factory(f"experiment={name}")
    validate(cfg)
    assert cfg.name == name


def test_every_experiment_has_a_test_that_runs_it():
    """A new conf/experiment/*.yaml must join one of the run-one-fast-epoch lists."""
    from test_images import EXPERIMENTS as IMAGE_RUNS
    from test_sequences import SEQUENCE_EXPERIMENTS

    runs = {"gaussian_mlp", "iris_mlp", *IMAGE_RUNS, *SEQUENCE_EXPERIMENTS,
            "mnist_resnet_frozen", "mnist_resnet_finetune"}  # the last two: test_images, with planted weights
    assert set(EXPERIMENTS) == runs


@pytest.mark.parametrize("overrides", [SMALL_GAUSSIAN, ["experiment=iris_mlp"]], ids=["gaussian_mlp", "iris_mlp"])
def test_tabular_experiment_writes_run_directory(cfg_factory, overrides):
    cfg = cfg_factory(*overrides, "trainer.max_epochs=2")
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["status"] == "completed" and on_disk["epochs"] == 2
    assert on_disk["params"] == metrics["params"] > 0
    assert {"test/acc", "test/auroc", "test/f1", "test/precision", "test/recall", "test/specificity",
            "test/loss"} <= set(on_disk["test"])
    assert {"val/acc", "val/loss"} <= set(on_disk["val"])
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1, "last.ckpt is the last epoch, whether or not it improved"
    assert Path(on_disk["best_checkpoint"]).is_file()
    n_test = 30 if cfg.name == "iris_mlp" else 400
    assert on_disk["n_test"] == n_test
    low, high = on_disk["test_acc_ci95"]
    assert low <= on_disk["test"]["test/acc"] <= high and high - low > 0.02  # a few hundred examples: wide
    for fig in ("confusion_matrix", "roc_curve"):
        assert (run / "figures" / f"{fig}.png").stat().st_size > 1000
    if cfg.name == "gaussian_mlp":
        assert (run / "figures" / "decision_boundary.png").is_file()

    # TensorBoard, Keras-style: the run directory is the run, with one sub-run per split, so each
    # metric's chart has its train and validation curves; the x axis counts epochs (1, 2).
    def events(sub):
        return EventAccumulator(str(run / sub), size_guidance={"scalars": 0, "images": 0}).Reload()

    train_ev, val_ev, test_ev, root = events("train"), events("validation"), events("test"), events(".")
    assert {"loss", "acc"} <= set(train_ev.Tags()["scalars"])
    assert {"loss", "acc", "auroc"} <= set(val_ev.Tags()["scalars"])
    assert [s.step for s in val_ev.Scalars("loss")] == [1, 2]  # one point per epoch, on the epoch axis
    best_epoch = int(on_disk["val"]["epoch"])  # counted from 1: the TensorBoard step of that epoch
    assert [(s.step, s.value) for s in test_ev.Scalars("acc")] == [(best_epoch, pytest.approx(on_disk["test"]["test/acc"]))]
    assert root.Tags()["scalars"] == []  # no single-point cards: no test/*, hp/* or epoch tags
    assert "figures/confusion_matrix" in root.Tags()["images"]
    assert "_hparams_/session_start_info" in root.PluginTagToContent("hparams")
    assert "summary/text_summary" in root.Tags()["tensors"]


def test_gaussian_learns_above_chance(cfg_factory):
    cfg = cfg_factory("experiment=gaussian_mlp", "data.n_train=2000", "data.n_test=4000", "trainer.max_epochs=30")
    acc = train(cfg)["test"]["test/acc"]
    assert acc > 0.88  # chance is 0.5; the Bayes limit 0.921


def test_iris_learns_above_chance(cfg_factory):
    cfg = cfg_factory("experiment=iris_mlp", "trainer.max_epochs=60")
    metrics = train(cfg)
    assert metrics["test"]["test/acc"] > 0.8  # chance is 1/3
    assert metrics["class_names"] == ["setosa", "versicolor", "virginica"]


def test_bf16_mixed_precision_on_cpu_learns(cfg_factory, monkeypatch):
    """trainer.precision=bf16-mixed runs the forward passes under bf16 autocast on a CPU too (mnist_best
    uses it: 1.8x faster steps with AMX) and still learns."""
    import dlcourse.train as T

    dtypes, original = set(), T.build_task

    def build_task_recording_dtypes(cfg, dm):
        task = original(cfg, dm)
        first = next(m for m in task.model.modules() if isinstance(m, torch.nn.Linear))
        first.register_forward_hook(lambda mod, inp, out: dtypes.add(out.dtype) if mod.training else None)
        return task

    monkeypatch.setattr(T, "build_task", build_task_recording_dtypes)
    cfg = cfg_factory("experiment=gaussian_mlp", "data.n_train=2000", "data.n_test=4000", "trainer.max_epochs=30",
                      "trainer.precision=bf16-mixed", "logger=none")
    acc = train(cfg)["test"]["test/acc"]
    assert dtypes == {torch.bfloat16}
    assert acc > 0.88  # chance is 0.5; the Bayes limit 0.921


def test_seed_zero_is_a_real_seed(cfg_factory):
    runs = [train(cfg_factory(*SMALL_GAUSSIAN, f"seed={s}", "logger=none"))["test"]["test/loss"] for s in (0, 0, 1)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_trains(cfg_factory, optimizer):
    # No experiment: gaussian_mlp sets SGD's momentum, which Adam (rightly) rejects.
    cfg = cfg_factory(*SMALL_GAUSSIAN[1:], f"optimizer={optimizer}", "optimizer.lr=0.01",
                      "trainer.max_epochs=2",
                      "data.batch_size=32", "logger=none")
    assert train(cfg)["test"]["test/acc"] > 0.6


@pytest.mark.parametrize("scheduler", ["none", "step", "cosine", "plateau", "onecycle"])
def test_every_scheduler_runs(cfg_factory, scheduler):
    cfg = cfg_factory(*SMALL_GAUSSIAN, f"scheduler={scheduler}", "trainer.max_epochs=2", "data.batch_size=100")
    metrics = train(cfg)
    assert metrics["epochs"] == 2
    events = EventAccumulator(str(Path(cfg.paths.output_dir) / "train")).Reload()
    lr_tags = [t for t in events.Tags()["scalars"] if t.startswith("lr-")]
    assert lr_tags, "the LR monitor writes the learning rate, with the training curves"
    assert [s.step for s in events.Scalars(lr_tags[0])] == [1, 2]  # the epoch axis


def test_l1_penalty_shrinks_weights(cfg_factory):
    def weight_l1(l1):
        cfg = cfg_factory(*SMALL_GAUSSIAN, f"task.l1={l1}", "trainer.max_epochs=20", "data.batch_size=32",
                          "optimizer.lr=0.1", "logger=none")
        train(cfg)
        ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
        return sum(v.abs().sum().item() for k, v in ckpt["state_dict"].items() if v.ndim > 1)

    assert weight_l1(0.01) < 0.7 * weight_l1(0.0)


def test_full_batch_and_single_sample_steps(cfg_factory):
    full = cfg_factory(*SMALL_GAUSSIAN, "data.batch_size=full", "logger=none")
    single = cfg_factory(*SMALL_GAUSSIAN, "data.n_train=50", "data.batch_size=1", "logger=none")
    for cfg, steps in ((full, 1), (single, 50)):
        train(cfg)
        ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
        assert ckpt["global_step"] == steps


def test_csv_classification_with_string_labels(cfg_factory, tmp_path):
    g = torch.Generator().manual_seed(0)
    centres = {"cat": (0.0, 0.0), "dog": (4.0, 0.0), "fox": (0.0, 4.0)}
    lines = ["weight,height,colour,species"]
    for name, (cx, cy) in centres.items():
        for _ in range(60):
            x, y = torch.randn(2, generator=g).tolist()
            lines.append(f"{cx + x:.3f},{cy + y:.3f},1,{name}")
    path = tmp_path / "animals.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = cfg_factory("data=csv", f"data.path={path}", "data.target=species", "data.features=[weight,height]",
                      "trainer.max_epochs=40", "data.batch_size=16", "optimizer.lr=0.01")
    metrics = train(cfg)
    assert metrics["task"] == "multiclass"
    assert metrics["class_names"] == ["cat", "dog", "fox"]  # the label mapping is saved with the run
    assert metrics["test"]["test/acc"] > 0.85


def test_csv_regression(cfg_factory, tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 2, generator=g)
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.05 * torch.randn(300, generator=g)
    path = tmp_path / "r.csv"
    path.write_text("a,b,y\n" + "\n".join(f"{a:.4f},{b:.4f},{t:.4f}" for (a, b), t in zip(x.tolist(), y.tolist(), strict=True)))
    cfg = cfg_factory("data=csv", f"data.path={path}", "data.target=y", "data.task=regression", "task.loss=mae",
                      "trainer.max_epochs=60", "data.batch_size=32", "optimizer.lr=0.01")
    metrics = train(cfg)
    assert metrics["task"] == "regression"
    assert metrics["test"]["test/r2"] > 0.9
    assert (Path(cfg.paths.output_dir) / "figures" / "predicted_vs_true.png").is_file()


def test_tensor_loader_shards_cover_everything_once_per_epoch():
    x = torch.arange(103)
    shards = [TensorLoader([x], batch_size=10, shuffle=True, seed=3, rank=r, world_size=2, pad_to_equal=True)
              for r in range(2)]
    seen = torch.cat([torch.cat([b[0] for b in loader]) for loader in shards])
    assert len(shards[0]) == len(shards[1]) == 6  # equal step counts on every rank
    assert set(seen.tolist()) == set(range(103)) and len(seen) == 104  # one padded repeat
    a, b = (torch.cat([batch[0] for batch in TensorLoader([x], 10, shuffle=True, seed=3, epoch_fn=lambda e=e: e)])
            for e in (0, 1))
    assert not torch.equal(a, b)  # a new order every epoch
    again = torch.cat([batch[0] for batch in TensorLoader([x], 10, shuffle=True, seed=3)])
    assert torch.equal(a, again)  # and the same order for the same (seed, epoch)
    evals = [torch.cat([b[0] for b in TensorLoader([x], 50, rank=r, world_size=2)]) for r in range(2)]
    assert sorted(torch.cat(evals).tolist()) == list(range(103))  # evaluation: exact, no padding


def test_auroc_is_exact_with_ties_and_ignores_absent_classes():
    from torchmetrics.functional.classification import binary_auroc, multiclass_auroc

    from dlcourse.metrics import AUROC

    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(3000, 4, generator=g) * 2, dim=1)
    probs = torch.round(probs * 20) / 20  # many tied scores
    y = torch.randint(0, 4, (3000,), generator=g)
    ours = AUROC(num_classes=4)
    for i in range(0, 3000, 512):  # batch by batch, as validation feeds it
        ours.update(probs[i : i + 512], y[i : i + 512])
    assert float(ours.compute()) == pytest.approx(float(multiclass_auroc(probs, y, 4)), abs=1e-6)
    binary = AUROC()
    binary.update(probs[:, 1], (y == 1).long())
    assert float(binary.compute()) == pytest.approx(float(binary_auroc(probs[:, 1], (y == 1).long())), abs=1e-6)

    y_missing = torch.where(y == 3, 0, y)  # class 3 absent: no AUC for it, the mean is over 0, 1, 2
    partial = AUROC(num_classes=4)
    partial.update(probs, y_missing)
    per_class = [float(binary_auroc(probs[:, c], (y_missing == c).long())) for c in range(3)]
    assert float(partial.compute()) == pytest.approx(sum(per_class) / 3, abs=1e-6)


def test_every_checkpoint_save_is_announced_to_the_loggers(tmp_path):
    """last.ckpt written in full (an epoch that did not improve) is announced like Lightning's own saves,
    so a logger that uploads checkpoints sees it; a link to the epoch's top-k file is no new save."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from dlcourse.callbacks.checkpoint import ModelCheckpoint

    class Recording(CSVLogger):
        saves: list[int] = []

        def after_save_checkpoint(self, checkpoint_callback):
            self.saves.append(trainer.current_epoch)

    class Worsening(L.LightningModule):  # val/loss = epoch: only epoch 0 is a top-k save
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch, _):
            self.log("val/loss", float(self.current_epoch))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=4)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss", save_top_k=1, save_last=True)
    trainer = L.Trainer(max_epochs=3, callbacks=[ckpt], logger=Recording(tmp_path), enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu")
    trainer.fit(Worsening(), data, data)
    assert Recording.saves == [0, 1, 2]  # epoch 0: the top-k file (last.ckpt links to it); 1, 2: last.ckpt
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["epoch"] == 2


def test_wilson_interval_of_small_and_large_test_sets():
    from dlcourse.console_summary import accuracy_line
    from dlcourse.intervals import wilson_interval

    low, high = wilson_interval(28 / 30, 30)  # iris at seed 42: 2 errors in 30 flowers
    assert low == pytest.approx(0.7868, abs=1e-4) and high == pytest.approx(0.9815, abs=1e-4)
    low, high = wilson_interval(29 / 30, 30)
    assert low == pytest.approx(0.8333, abs=1e-3) and high == pytest.approx(0.9941, abs=1e-3)
    low, high = wilson_interval(1.0, 30)  # never the degenerate [1, 1] of the normal approximation
    assert low == pytest.approx(0.8865, abs=1e-3) and high == 1.0
    low, high = wilson_interval(0.9933, 10_000)  # MNIST's test set: a tenth of a point either way
    assert 0.991 < low < 0.9933 < high < 0.9952
    line = accuracy_line({"test": {"test/acc": 28 / 30}, "n_test": 30, "test_acc_ci95": [0.7868, 0.9815]})
    assert line == "test accuracy 93.33% (28 of 30; 95% CI 78.7-98.2%, Wilson)"


@pytest.mark.parametrize(("limit", "steps"), [("3", 3), ("0.25", 5)])
def test_limit_train_batches_counts_batches_also_when_steps_are_grouped(cfg_factory, limit, steps):
    """20 batches an epoch run as a few calls of several steps each (task.steps_per_call=auto), but
    Lightning counts trainer.limit_train_batches in calls: it must still mean batches."""
    cfg = cfg_factory("experiment=gaussian_mlp", "data.n_train=200", "data.batch_size=10",
                      f"trainer.limit_train_batches={limit}", "trainer.max_epochs=1")
    train(cfg)
    last = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == steps
