"""Figures for image classifiers (matplotlib only): input samples, per-class precision and recall,
misclassified test images, Grad-CAM heat maps and the first layer's filters."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dlcourse import plots  # noqa: E402, F401  (imported for the shared figure style, plots.STYLE)
from dlcourse.gradcam import first_conv_layer, gradcam  # noqa: E402


def _show(ax, img: torch.Tensor) -> None:
    """img: (C, H, W) in [0, 1]."""
    img = img.detach().float().cpu()
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img[:3].permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n: int, cols: int):
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.45 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def samples_per_class_figure(x: torch.Tensor, y: torch.Tensor, class_names: list[str], per_class: int = 8):
    """x in [0, 1] (N, C, H, W): a row of training images per class."""
    k = len(class_names)
    fig, axes = plt.subplots(k, per_class, figsize=(1.1 * per_class + 1.5, 1.1 * k), squeeze=False)
    for c in range(k):
        idx = (y == c).nonzero().flatten()[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            if j < len(idx):
                _show(ax, x[idx[j]])
            else:
                ax.axis("off")
        axes[c, 0].set_ylabel(class_names[c], rotation=0, ha="right", va="center", fontsize=8)
        axes[c, 0].axis("on")
        axes[c, 0].set_xticks([])
        axes[c, 0].set_yticks([])
    fig.suptitle("training images per class (as the model sees them, denormalised)")
    fig.tight_layout()
    return fig


def precision_recall_figure(preds: torch.Tensor, targets: torch.Tensor, class_names: list[str]):
    k = len(class_names)
    hard = preds.argmax(-1) if preds.ndim == 2 else (preds > 0.5).long()
    tp = torch.stack([((hard == c) & (targets == c)).sum() for c in range(k)]).float()
    pred_n = torch.stack([(hard == c).sum() for c in range(k)]).float()
    true_n = torch.stack([(targets == c).sum() for c in range(k)]).float()
    precision, recall = (tp / pred_n.clamp_min(1)).numpy(), (tp / true_n.clamp_min(1)).numpy()
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * k + 2), 4))
    pos = np.arange(k)
    ax.bar(pos - 0.2, precision, 0.4, label="precision")
    ax.bar(pos + 0.2, recall, 0.4, label="recall")
    low = float(min(precision.min(), recall.min())) if k else 0.0
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_xticks(pos, class_names, rotation=45 if k > 10 or max(map(len, class_names)) > 3 else 0, ha="right")
    ax.set_ylabel("test set")
    ax.set_title("precision and recall per class")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def misclassified_figure(x: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor, class_names: list[str],
                         n: int = 32, total: int | None = None):
    """x in [0, 1]: the first n misclassified test images, titled true -> predicted (probability)."""
    hard = preds.argmax(-1)
    wrong = (hard != targets).nonzero().flatten()[:n]
    fig, axes = _grid(max(len(wrong), 1), 8)
    for ax, i in zip(axes.flat, wrong.tolist(), strict=False):
        _show(ax, x[i])
        ax.axis("on")
        ax.set_title(f"{class_names[targets[i]]}->{class_names[hard[i]]} ({preds[i, hard[i]]:.2f})", fontsize=7)
    total = int((hard != targets).sum()) if total is None else total
    fig.suptitle(f"misclassified test images: true -> predicted (probability); {total} in all")
    fig.tight_layout()
    return fig


def gradcam_figure(images: torch.Tensor, cams: torch.Tensor, classes: torch.Tensor, targets: torch.Tensor,
                   class_names: list[str]):
    """Each image with its Grad-CAM heat map on top, titled with the explained (predicted) class."""
    n = len(images)
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(1.4 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        r, c = 2 * (i // cols), i % cols
        _show(axes[r, c], images[i])
        axes[r, c].set_title(f"true {class_names[targets[i]]}", fontsize=7)
        axes[r + 1, c].imshow(images[i].mean(0).numpy(), cmap="gray", vmin=0, vmax=1)
        axes[r + 1, c].imshow(cams[i].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        axes[r + 1, c].set_title(f"pred {class_names[classes[i]]}", fontsize=7)
    fig.suptitle("Grad-CAM: pixels that drove the predicted class (red = most)")
    fig.tight_layout()
    return fig


def filters_figure(model: torch.nn.Module, max_filters: int = 64):
    conv = first_conv_layer(model)
    if conv is None:
        return None
    w = conv.weight.detach().float().cpu()[:max_filters]
    fig, axes = _grid(len(w), 8)
    for ax, f in zip(axes.flat, w, strict=False):
        img = f if f.shape[0] == 3 else f.mean(0, keepdim=True)
        img = (img - img.min()) / (img.max() - img.min()).clamp_min(1e-12)
        _show(ax, img)
        ax.axis("on")
    fig.suptitle(f"first convolution's filters ({conv.out_channels} maps, {conv.kernel_size[0]}x{conv.kernel_size[1]})")
    fig.tight_layout()
    return fig


def test_figures(model, x_test: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor, class_names: list[str],
                 denormalize, n_cam: int = 16) -> dict:
    """All image figures after the test. x_test: normalised model inputs, in test order."""
    figs = {"per_class_precision_recall": precision_recall_figure(preds, targets, class_names)}
    if preds.ndim == 2:
        hard = preds.argmax(-1)
        wrong = (hard != targets).nonzero().flatten()[:32]
        figs["misclassified"] = misclassified_figure(denormalize(x_test[wrong]), preds[wrong], targets[wrong],
                                                     class_names, n=32, total=int((hard != targets).sum()))
    if first_conv_layer(model) is not None:
        figs["first_layer_filters"] = filters_figure(model)
        # A few test images: one per class where possible, so every class gets explained.
        pick = [int((targets == c).nonzero()[0]) for c in range(len(class_names)) if (targets == c).any()]
        pick = (pick + list(range(len(targets))))[:n_cam]
        idx = torch.tensor(sorted(set(pick)))[:n_cam]
        cams, classes = gradcam(model, x_test[idx])
        figs["gradcam"] = gradcam_figure(denormalize(x_test[idx]).cpu(), cams, classes, targets[idx], class_names)
    return figs
