"""The training loop (dlcourse.loop): how many batches a Lightning call runs, the true step count that
the schedule and the progress bar read, and the grouping knob's old spelling (data.steps_per_call)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from omegaconf import open_dict

from dlcourse.loop import batches_per_call

ONE_DEVICE = SimpleNamespace(world_size=1, limit_train_batches=1.0)


def test_batches_per_call_auto_a_number_and_one_under_ddp_and_limits():
    assert batches_per_call("auto", 8, ONE_DEVICE) == 8  # at most 8 batches: the epoch in one call
    assert batches_per_call("auto", 9, ONE_DEVICE) == 2
    assert batches_per_call("auto", 300, ONE_DEVICE) == 38  # about 8 calls (bar updates) an epoch
    assert batches_per_call(5, 300, ONE_DEVICE) == 5
    assert batches_per_call("auto", 300) == 38  # no trainer (a loader built outside a fit)
    for trainer in (SimpleNamespace(world_size=2, limit_train_batches=1.0),  # DDP: one backward per forward
                    SimpleNamespace(world_size=1, limit_train_batches=3),  # Lightning counts limits in calls
                    SimpleNamespace(world_size=1, limit_train_batches=0.5)):
        assert batches_per_call(5, 300, trainer) == 1 and batches_per_call("auto", 300, trainer) == 1


def trained(cfg_factory, *overrides):
    from dlcourse.train import fit, prepare

    cfg = cfg_factory(*overrides, "logger=none", "~callbacks.figures", "~callbacks.lr_monitor")
    prepared = prepare(cfg)
    fit(prepared, cfg)
    return prepared


def test_grouping_changes_the_calls_not_the_results(cfg_factory):
    """One optimizer step per batch, in the same order, however many batches a call runs: the same seed
    gives the same weights and metrics; a per-step schedule spans the batches, not the calls."""
    iris = ["experiment=iris_mlp", "trainer.max_epochs=2", "scheduler=onecycle", "task.l1=0.001"]
    runs = {k: trained(cfg_factory, *iris, f"task.steps_per_call={k}") for k in ("auto", "1", "4")}
    reference = runs["auto"].task
    batches = 6  # 90 flowers in batches of 16
    for k, prepared in runs.items():
        task = prepared.task
        assert prepared.dm.group_batches(batches) == {"auto": 6, "1": 1, "4": 4}[k]  # what the loader was asked
        assert task.loop.batches == batches and task.trainer.global_step == 2 * batches, k
        assert task.trainer.lr_scheduler_configs[0].scheduler.total_steps == 2 * batches, k
        assert all(torch.equal(v, reference.state_dict()[n]) for n, v in task.state_dict().items()), k
        assert task.val_history == reference.val_history and task.test_results == reference.test_results, k
        # the epoch's train loss is summed call by call: the same up to the order of the sum
        assert [h["train/loss"] for h in task.train_history] == pytest.approx(
            [h["train/loss"] for h in reference.train_history], rel=1e-6)


def test_a_per_step_schedule_spans_the_batches_that_limit_train_batches_leaves(cfg_factory):
    task = trained(cfg_factory, "experiment=gaussian_mlp", "data.n_train=200", "data.batch_size=10",
                   "trainer.limit_train_batches=3", "trainer.max_epochs=2", "scheduler=onecycle").task
    assert task.trainer.global_step == 6
    assert task.trainer.lr_scheduler_configs[0].scheduler.total_steps == 6  # not 2 x 20 batches


def test_the_old_key_data_steps_per_call_works_with_a_warning(tmp_path):
    from dlcourse.compose import compose, job_config
    from dlcourse.config.validate import validate

    with pytest.warns(FutureWarning, match=r"data\.steps_per_call is deprecated.*task\.steps_per_call=5"):
        cfg = job_config(compose(["data.steps_per_call=5"], output_dir=tmp_path))
    assert cfg.task.steps_per_call == 5 and "steps_per_call" not in cfg.data
    # in a config file, or the config an older checkpoint stored: moved when it is validated
    with open_dict(cfg):
        cfg.data.steps_per_call = 3
    with pytest.warns(FutureWarning, match=r"data\.steps_per_call is deprecated.*task\.steps_per_call=3"):
        validate(cfg)
    assert cfg.task.steps_per_call == 3 and "steps_per_call" not in cfg.data


def test_a_bad_value_under_the_old_key_names_the_new_one(capsys, tmp_path, monkeypatch):
    from dlcourse.app import main

    monkeypatch.setenv("DLCOURSE_ROOT", str(tmp_path))
    with pytest.warns(FutureWarning), pytest.raises(SystemExit) as exc:
        main(["experiment=gaussian_mlp", "data.steps_per_call=0"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith("error: task.steps_per_call=0") and ">= 1" in err, err
