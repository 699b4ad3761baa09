"""Figures: drawn once, the same PNG in the run directory and in TensorBoard, and the image grids
(one mosaic each) for inputs they were not written for: RGB, missing classes, nothing misclassified."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from dlcourse import image_figures, metric_figures
from dlcourse.callbacks.figures import FigureCallback
from dlcourse.models.cnn import CNN


def png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as img:
        img.verify()
    with Image.open(io.BytesIO(png)) as img:
        return img.size


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grids_draw_for_grey_and_colour_images(channels):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(30, channels, 12, 10, generator=gen)
    y = torch.arange(30) % 3  # class 3 has no image: its row stays empty
    names = ["a", "b", "c", "d"]
    preds = torch.softmax(torch.randn(30, 4, generator=gen), -1)
    cams = torch.rand(5, 12, 10, generator=gen)
    figs = {
        "samples": image_figures.samples_per_class_figure(x, y, names, per_class=4),
        "wrong": image_figures.misclassified_figure(x, preds, y, names, n=9),
        "cams": image_figures.gradcam_figure(x[:5], cams, torch.tensor([0, 1, 2, 3, 0]), y[:5], names),
        "filters": image_figures.filters_figure(CNN((channels, 12, 10), 4, channels=[5, "pool"])),
    }
    for name, fig in figs.items():
        png, height, width = metric_figures.render_png(fig)
        assert png_size(png) == (width, height), name
        assert width > 200 and height > 100, name
    samples = figs["samples"].axes[0]
    assert [t.get_text() for t in samples.get_yticklabels()] == names  # one row per class, named
    texts = [t.get_text() for t in figs["wrong"].axes[0].texts]
    assert len(texts) == int((preds.argmax(-1) != y)[:30].sum().clamp(max=9))
    assert all("->" in t for t in texts)


def test_nothing_misclassified_still_draws_its_figure():
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    preds = torch.nn.functional.one_hot(y, 2).float()
    fig = image_figures.misclassified_figure(x, preds, y, ["no", "yes"])
    assert "0 in all" in fig.texts[0].get_text()
    assert png_size(metric_figures.render_png(fig)[0])


def test_figures_are_written_once_as_png_and_the_same_bytes_go_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    class Logger:  # what FigureCallback.save reads of a Lightning logger
        def __init__(self, log_dir):
            self.experiment = SummaryWriter(log_dir)

    class Trainer:
        default_root_dir, current_epoch = str(tmp_path), 3
        loggers = [Logger(tmp_path / "tb")]

    fig = metric_figures.roc_figure({"yes": (torch.tensor([0.0, 0.5, 1.0]).numpy(), torch.tensor([0.0, 0.8, 1.0]).numpy(), 0.9)})
    writer = Trainer.loggers[0].experiment
    writer.close()  # as Lightning closes it when fit ends, before the test's figures
    FigureCallback().save(Trainer(), {"roc_curve": fig})
    writer.close()
    png = (tmp_path / "figures" / "roc_curve.png").read_bytes()
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0}).Reload()
    (image,) = events.Images("figures/roc_curve")
    assert image.encoded_image_string == png and image.step == 3
    assert (image.width, image.height) == png_size(png) == (500, 500)


def test_a_data_modules_pyplot_figure_is_saved_and_closed(tmp_path):
    import matplotlib.pyplot as plt

    class Trainer:
        default_root_dir, current_epoch, loggers = str(tmp_path), 0, []

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    FigureCallback().save(Trainer(), {"own": fig})
    assert png_size((tmp_path / "figures" / "own.png").read_bytes())
    assert not plt.fignum_exists(fig.number)
    assert "matplotlib.pyplot" in sys.modules


def test_figures_without_pyplot(tmp_path):
    """The standard figures build on matplotlib's object interface: pyplot (and its backend
    machinery) is not imported by drawing them."""
    import subprocess

    code = ("import sys, torch\nfrom dlcourse import metric_figures, image_figures\n"
            "import numpy as np\n"
            "metric_figures.render_png(metric_figures.confusion_matrix_figure(np.eye(3, dtype=int) * 5, ['a', 'b', 'c']))\n"
            "metric_figures.render_png(image_figures.samples_per_class_figure(torch.rand(6, 1, 8, 8), torch.arange(6) % 3, "
            "['a', 'b', 'c']))\n"
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
