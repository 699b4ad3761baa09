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


def test_register_launcher_lets_hydra_instantiate_a_launcher_outside_hydra_plugins():
    """Hydra instantiates a launcher only from its registry of classes found under hydra_plugins:
    the SLURM launcher of conf/hydra/launcher/slurm_cpu.yaml is added to it by name."""
    from hydra.core.plugins import Plugins
    from omegaconf import OmegaConf

    from dlcourse.sweep.launch import LAUNCHER
    from dlcourse.sweep.slurm import SlurmLauncher

    internals.register_launcher(LAUNCHER, SlurmLauncher)
    config = OmegaConf.create({"_target_": LAUNCHER, "submitit_folder": "x", "poll_s": 1, "cancel_on_interrupt": True})
    launcher = Plugins.instance()._instantiate(config)
    assert type(launcher) is SlurmLauncher and launcher.own == {"poll_s": 1, "cancel_on_interrupt": True}
    assert launcher.params == {"submitit_folder": "x"}  # what goes to submitit
