"""Settings that fit the machine (dlcourse.machine): trainer.precision=auto and threads=auto."""

from __future__ import annotations

import pytest
import torch

from dlcourse import machine
from dlcourse.config.validate import validate
from dlcourse.train import prepare


@pytest.mark.parametrize(("flags", "expected"), [({"avx2", "avx512f"}, "32-true"), ({"avx512_bf16"}, "bf16-mixed"),
                                                 ({"amx_bf16", "amx_tile"}, "bf16-mixed"), (set(), "32-true")])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(monkeypatch, flags, expected):
    monkeypatch.setattr(machine, "cpu_flags", lambda: flags)
    assert machine.resolve_precision("auto", "cpu") == expected
    assert machine.resolve_precision("16-mixed", "cpu") == "16-mixed"  # a chosen value stays as it is


def test_auto_precision_reaches_the_trainer(cfg_factory, monkeypatch):
    from dlcourse.build import build_trainer

    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2"})
    cfg = cfg_factory("experiment=iris_mlp", "trainer=cpu", "trainer.precision=auto", "logger=none")
    validate(cfg)
    assert build_trainer(cfg).precision == "32-true"
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx512_bf16"})
    assert build_trainer(cfg).precision == "bf16-mixed"


def test_mnist_best_asks_for_auto_precision(cfg_factory):
    assert cfg_factory("experiment=mnist_best").trainer.precision == "auto"


@pytest.mark.parametrize(("overrides", "expected"), [
    (["experiment=iris_mlp"], 1),  # 515 weights x 16 examples: one thread
    (["experiment=iris_mlp", "threads=2"], 2),  # a number is a number
    (["experiment=iris_mlp", "model.hidden=[2000,2000]", "data.batch_size=64"], "unchanged"),  # 4M weights
])
def test_thread_policy(cfg_factory, overrides, expected):
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        prepare(cfg_factory(*overrides, "trainer=cpu"))
        assert torch.get_num_threads() == (3 if expected == "unchanged" else expected)
    finally:
        torch.set_num_threads(before)
