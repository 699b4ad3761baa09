"""Figures for image classifiers (matplotlib only): input samples, per-class precision and recall,
misclassified test images, Grad-CAM heat maps and the first layer's filters.

Grids of images are drawn as one mosaic in one Axes, labels as text on it: building and drawing an
Axes per image made the 80-image sample grid the slowest part of a small run.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib import colormaps

from dlcourse.gradcam import first_conv_layer, gradcam
from dlcourse.metric_figures import figure


def _rgb(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, 3) floats: grey repeated, more than 3 channels cut to 3."""
    x = images.detach().float().cpu().clamp(0, 1)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
    return x.permute(0, 2, 3, 1).numpy()


def _mosaic_figure(tiles: np.ndarray, cols: int, labels: list[str] | None = None, tile_inches: float = 1.3,
                   row_labels: list[str] | None = None, title: str = ""):
    """tiles (N, H, W, 3) in [0, 1] on a white grid of `cols` columns in one Axes; `labels` above
    each tile (small text), `row_labels` at the left of each row."""
    n, h, w, _ = tiles.shape
    rows = max(1, math.ceil(n / cols))
    gap = max(1, round(0.1 * w))
    room = round(h * 0.3) if labels else 0  # space for a line of text above each tile
    cell_h, cell_w = h + gap + room, w + gap
    canvas = np.ones((rows * cell_h, cols * cell_w - gap, 3), dtype=np.float32)
    corners = []
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = r * cell_h + room, c * cell_w
        canvas[top: top + h, left: left + w] = tiles[i]
        corners.append((top, left))
    text_inches = 0.22 if labels else 0.0
    fig, ax = figure((tile_inches * cols + (1.2 if row_labels else 0.3),
                      (tile_inches + text_inches) * rows * h / w + 0.6))
    ax.imshow(canvas, interpolation="nearest")
    for (top, left), text in zip(corners, labels or [], strict=False):
        ax.text(left + w / 2, top - 0.5, text, ha="center", va="bottom", fontsize=7)
    ax.set_xticks([])
    if row_labels:
        ax.set_yticks([r * cell_h + room + h / 2 for r in range(len(row_labels))], row_labels, fontsize=8)
        ax.tick_params(length=0)
    else:
        ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def samples_per_class_figure(x: torch.Tensor, y: torch.Tensor, class_names: list[str], per_class: int = 8):
    """x in [0, 1] (N, C, H, W): a row of training images per class (empty places stay white)."""
    k = len(class_names)
    h, w = x.shape[2:]
    tiles = np.ones((k * per_class, h, w, 3), dtype=np.float32)
    for cls in range(k):
        idx = (y == cls).nonzero().flatten()[:per_class]
        if len(idx):
            tiles[cls * per_class: cls * per_class + len(idx)] = _rgb(x[idx])
    return _mosaic_figure(tiles, per_class, tile_inches=1.1, row_labels=list(class_names),
                          title="training images per class (as the model sees them, denormalised)")


def precision_recall_figure(preds: torch.Tensor, targets: torch.Tensor, class_names: list[str]):
    k = len(class_names)
    hard = preds.argmax(-1) if preds.ndim == 2 else (preds > 0.5).long()
    tp = torch.stack([((hard == c) & (targets == c)).sum() for c in range(k)]).float()
    pred_n = torch.stack([(hard == c).sum() for c in range(k)]).float()
    true_n = torch.stack([(targets == c).sum() for c in range(k)]).float()
    precision, recall = (tp / pred_n.clamp_min(1)).numpy(), (tp / true_n.clamp_min(1)).numpy()
    fig, ax = figure((max(5, 0.6 * k + 2), 4))
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
    total = int((hard != targets).sum()) if total is None else total
    title = f"misclassified test images: true -> predicted (probability); {total} in all"
    if len(wrong) == 0:
        return _mosaic_figure(np.ones((1, *x.shape[2:], 3), dtype=np.float32), 1, title=title)
    labels = [f"{class_names[targets[i]]}->{class_names[hard[i]]} ({preds[i, hard[i]]:.2f})" for i in wrong.tolist()]
    return _mosaic_figure(_rgb(x[wrong]), min(8, len(wrong)), labels, title=title)


def gradcam_figure(images: torch.Tensor, cams: torch.Tensor, classes: torch.Tensor, targets: torch.Tensor,
                   class_names: list[str]):
    """Each image (titled with its true class) above its Grad-CAM heat map over the image in grey
    (titled with the explained, predicted class)."""
    n = len(images)
    cols = min(n, 8)
    rgb = _rgb(images)
    grey = rgb.mean(-1, keepdims=True)
    heat = colormaps["jet"](cams.clamp(0, 1).numpy())[..., :3]
    overlay = 0.5 * grey + 0.5 * heat  # as imshow(grey) under imshow(heat, alpha=0.5)
    tiles, labels = [], []
    for start in range(0, n, cols):  # a row of images, then the row of their heat maps
        part = range(start, min(start + cols, n))
        pad = cols - len(part)
        blank = [np.ones_like(rgb[0])] * pad
        tiles += [rgb[i] for i in part] + blank + [overlay[i] for i in part] + blank
        labels += [f"true {class_names[targets[i]]}" for i in part] + [""] * pad
        labels += [f"pred {class_names[classes[i]]}" for i in part] + [""] * pad
    return _mosaic_figure(np.stack(tiles).astype(np.float32), cols, labels,
                          title="Grad-CAM: pixels that drove the predicted class (red = most)")


def filters_figure(model: torch.nn.Module, max_filters: int = 64):
    conv = first_conv_layer(model)
    if conv is None:
        return None
    w = conv.weight.detach().float().cpu()[:max_filters]
    img = w if w.shape[1] == 3 else w.mean(1, keepdim=True)
    flat = img.flatten(1)
    lo, hi = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    img = (img - lo) / (hi - lo).clamp_min(1e-12)
    return _mosaic_figure(_rgb(img), min(8, len(img)), tile_inches=0.6,
                          title=f"first convolution's filters ({conv.out_channels} maps, "
                                f"{conv.kernel_size[0]}x{conv.kernel_size[1]})")


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
