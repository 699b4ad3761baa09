"""The config schema: types and messages, signatures read from source without torch, recorded
signatures of torch and Lightning classes that match the installed releases."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

import pytest

from conftest import REPO
from dlcourse.config.check import problem
from dlcourse.config.types import Activation, BatchSize, Init, Probability, Widths


@pytest.mark.parametrize(("value", "tp", "says"), [
    (1.5, Probability, "must be a number >= 0 and < 1"),
    (True, Probability, "must be a number >= 0 and < 1"),
    ("swish", Activation, "allowed: relu, leaky_relu, tanh, sigmoid, gelu"),
    (0, BatchSize, 'must be an integer >= 1 or "full"'),
    ([], Widths, "must be a non-empty list of integers >= 1"),
    ([3, 0], Widths, "must be a non-empty list of integers >= 1"),
    ("3", int, "must be an integer"),
    ([1, 2, 3], tuple[float, float], "must be a list of numbers"),
])
def test_bad_values_say_what_is_allowed(value, tp, says):
    assert problem(value, tp) == says


@pytest.mark.parametrize(("value", "tp"), [(0.0, Probability), (3, float), ("full", BatchSize), (64, BatchSize),
                                           ([300, 100], Widths), ([1, 2], tuple[float, float]), (None, int | None)])
def test_good_values_pass(value, tp):
    assert problem(value, tp) is None


def test_the_schema_names_what_the_models_build():
    from dlcourse.models.layers import ACTIVATIONS

    assert set(get_args(Activation)) == set(ACTIVATIONS)
    assert set(get_args(Init)) == {"default", "xavier", "kaiming", "normal"}


def test_recorded_signatures_match_the_installed_torch_and_lightning():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "record_signatures.py"), "--check"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validation_and_config_errors_import_no_torch():
    """A typo is answered before torch, Lightning or torchmetrics are imported (seconds saved per command)."""
    code = (
        "import sys\n"
        "from dlcourse.compose import compose, job_config\n"
        "from dlcourse.config.validate import validate\n"
        "for e in ['gaussian_mlp', 'mnist_best', 'sine_seq2seq', 'mnist_resnet_finetune']:\n"
        "    validate(compose([f'experiment={e}']))\n"
        "from dlcourse.app import main\n"
        "for bad in (['model.dropout=1.5'], ['lr=0.1'], ['model=lstm'], ['--cfg', 'job'],\n"
        "            ['-m', '--cfg', 'job', 'optimizer.lr=0.1,0.2'], ['-m', 'optimizer.lr=0.1,-1']):\n"
        "    try:\n"
        "        main(['experiment=iris_mlp', *bad])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'lightning', 'torchmetrics', 'torchvision') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout[-2000:]
