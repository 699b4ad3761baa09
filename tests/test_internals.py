"""Every private Lightning/Hydra member dlcourse.internals uses, pinned: these fail when a release
renames or changes one, before anything else breaks in a confusing way."""

from __future__ import annotations

import inspect

import lightning as L
import torch

from dlcourse import internals


def test_direct_optimizer_step_counts_every_step():
    """LightningOptimizer's `_on_before_step` / `_on_after_step` (instance attributes the fit loop sets)
    are what count a step: without them trainer.global_step would stay 0."""
    class Manual(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            optimizer = self.optimizers()
            optimizer.zero_grad()
            self.layer(batch[0]).pow(2).mean().backward()
            internals.optimizer_step(optimizer)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    model = Manual()
    before = model.layer.weight.detach().clone()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(12, 2)), batch_size=4)
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, data)
    assert trainer.global_step == 6  # 3 batches x 2 epochs: Lightning's counter saw every step
    assert not torch.equal(model.layer.weight, before)  # and the weights moved


def test_ddp_rank_command_hook_is_where_lightning_looks_it_up():
    from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
    from lightning.pytorch.strategies.launchers import subprocess_script as pl_launcher

    for module in (fabric_launcher, pl_launcher):
        assert "_hydra_subprocess_cmd" in vars(module)
        # The launcher calls it by its module-level name, so replacing the attribute takes effect.
        assert "_hydra_subprocess_cmd(" in inspect.getsource(module)
    assert list(inspect.signature(fabric_launcher._hydra_subprocess_cmd).parameters) == ["local_rank"]
    original = (fabric_launcher._hydra_subprocess_cmd, pl_launcher._hydra_subprocess_cmd)
    try:
        def command(local_rank):
            return ["x"], "."

        internals.set_ddp_rank_command(command)
        assert fabric_launcher._hydra_subprocess_cmd is command and pl_launcher._hydra_subprocess_cmd is command
    finally:
        fabric_launcher._hydra_subprocess_cmd, pl_launcher._hydra_subprocess_cmd = original


def test_hydra_app_behind_the_compose_api_starts_sweeps():
    from dlcourse.compose import start

    start()
    app = internals.hydra_app()
    params = list(inspect.signature(app.multirun).parameters)
    assert params[:3] == ["config_name", "task_function", "overrides"]


def test_register_plugin_lets_hydra_instantiate_a_plugin_its_scan_missed():
    """Hydra instantiates a launcher only from its registry of the classes its scan of hydra_plugins
    found (an editable install hides dlcourse's from it): the SLURM launcher of
    conf/hydra/launcher/slurm_cpu.yaml is added to it by name."""
    from hydra.core.plugins import Plugins
    from omegaconf import OmegaConf

    from dlcourse.sweeps.launch import LAUNCHER
    from hydra_plugins.dlcourse_slurm import SlurmLauncher

    internals.register_plugin(LAUNCHER)
    config = OmegaConf.create({"_target_": LAUNCHER, "submitit_folder": "x", "poll_s": 1, "cancel_on_interrupt": True})
    launcher = Plugins.instance()._instantiate(config)
    assert type(launcher) is SlurmLauncher and launcher.own == {"poll_s": 1, "cancel_on_interrupt": True}
    assert launcher.params == {"submitit_folder": "x"}  # what goes to submitit


LEAN_CODE = """
import sys, dlcourse.lean
dlcourse.lean.console_setup()  # the console scripts' first step (import dlcourse alone changes nothing)
import lightning, torch
from torchmetrics.classification import MulticlassAccuracy
import lightning_utilities.core.imports as lui
print(sorted(m for m in ('torchvision', 'scipy.signal', 'matplotlib.pyplot') if m in sys.modules))
print(float(MulticlassAccuracy(3, average="micro")(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))))
print(bool(lui.RequirementCache('torchvision')), lui.package_available('scipy'))
"""


def test_lean_torchmetrics_hides_only_while_torchmetrics_is_imported():
    """dlcourse.lean makes lightning_utilities' RequirementCache and package_available answer 'absent'
    for torchvision, scipy and matplotlib while torchmetrics' __init__ runs (only then). Without the
    hook (DLCOURSE_FULL_IMPORTS=1) the same import pulls them in: the hook is what keeps them out."""
    import os
    import subprocess
    import sys

    def run(**env):
        out = subprocess.run([sys.executable, "-c", LEAN_CODE], capture_output=True, text=True, timeout=300,
                             env={**os.environ, **env})
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.splitlines()

    hidden, accuracy, afterwards = run(DLCOURSE_FULL_IMPORTS="0")
    assert hidden == "[]"
    assert abs(float(accuracy) - 2 / 3) < 1e-6  # the metrics dlcourse uses work as usual
    assert afterwards == "True True"  # the availability checks answer truly again
    full, _, _ = run(DLCOURSE_FULL_IMPORTS="1")
    assert "torchvision" in full and "scipy.signal" in full


def test_remembered_compositions_pickle_as_hydras_own_loader_and_end_with_the_block():
    """joblib's and submitit's workers receive Hydra's plain config loader, without the remembered
    configs; after the block GlobalHydra has its own loader back."""
    import pickle

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from omegaconf import OmegaConf

    from dlcourse.compose import compose, start

    start()
    real = internals.hydra_app().config_loader
    with internals.compositions_remembered():
        loader = internals.hydra_app().config_loader
        first, again = compose(["experiment=iris_mlp"]), compose(["experiment=iris_mlp"])
        assert first is not again and len(loader.memo) == 1  # composed once, each caller its own copy
        assert OmegaConf.to_container(first) == OmegaConf.to_container(again)
        assert type(pickle.loads(pickle.dumps(loader))) is ConfigLoaderImpl
    assert internals.hydra_app().config_loader is real


def test_event_file_writer_reopens_a_closed_summary_writer(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(tmp_path)
    writer.close()  # Lightning closes it at the end of fit; the test's figures come after
    file_writer = internals.event_file_writer(writer)
    assert callable(file_writer.add_summary) and file_writer.get_logdir() == str(tmp_path)
    writer.close()
    assert internals.event_file_writer(object()) is None  # not a TensorBoard logger


def test_published_values_reach_early_stopping_and_the_progress_bar():
    """EarlyStopping and ModelCheckpoint read `trainer.callback_metrics`; the bar reads
    `progress_bar_metrics`: values put there directly steer them as self.log's would."""
    from lightning.pytorch.callbacks import EarlyStopping

    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    internals.publish_callback_metrics(trainer, {"val/loss": torch.tensor(0.5)}, {"val/loss": 0.5})
    assert float(trainer.callback_metrics["val/loss"]) == 0.5 and trainer.progress_bar_metrics["val/loss"] == 0.5
    stop = EarlyStopping(monitor="val/loss", patience=0)
    should_stop, _ = stop._evaluate_stopping_criteria(trainer.callback_metrics["val/loss"])
    assert not should_stop and float(stop.best_score) == 0.5  # it read the published value


def test_learning_rates_come_under_the_monitors_names(tmp_path):
    from lightning.pytorch.callbacks import LearningRateMonitor

    class Model(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            return self.layer(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.003)

    seen = []

    class Probe(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            seen.append(internals.learning_rates(monitor, trainer, "epoch"))

    from lightning.pytorch.loggers import CSVLogger

    monitor = LearningRateMonitor()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(4, 2)), batch_size=4)
    L.Trainer(max_epochs=1, logger=CSVLogger(tmp_path), enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, accelerator="cpu", callbacks=[monitor, Probe()]).fit(Model(), data)
    assert seen == [{"lr-Adam": 0.003}]


def test_progress_bars_take_their_training_text_from_the_private_hook():
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    assert "self._get_train_description(" in inspect.getsource(RichProgressBar)
    for bar in (RichProgressBar, TQDMProgressBar):
        assert internals.attached_trainer(bar()) is None  # `trainer` itself raises before attach

    class Bar(internals.TrainDescription, RichProgressBar):
        def epoch_text(self, current_epoch):
            return f"epoch {current_epoch + 1}"

    assert Bar()._get_train_description(2) == "epoch 3"


def test_a_failed_hydra_job_holds_its_exception():
    from hydra.core.utils import JobReturn, JobStatus

    error = ValueError("boom")
    ret = JobReturn(status=JobStatus.FAILED, _return_value=error)
    assert internals.failed_job_error(ret) is error
    assert list(inspect.signature(internals.run_hydra_job).parameters) == ["task_function", "cfg", "job_dir_key",
                                                                         "callbacks"]
    from hydra.core.utils import run_job

    assert {"task_function", "config", "job_dir_key", "job_subdir_key", "hydra_context"} <= set(
        inspect.signature(run_job).parameters)
