"""Figures for the student, as plain matplotlib functions (no Lightning): each returns a Figure.

Figures are built with matplotlib's object interface (`Figure`, no pyplot: no figure manager, nothing
to close) and rendered once by `render_png`, whose bytes go to the PNG file and to TensorBoard alike.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# One look for every figure, sized for a TensorBoard image card (about 500 px wide at dpi 100):
# titles inside the image, the same fonts and grid everywhere.
STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "figure.titlesize": 11,
         "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": False,
         "figure.dpi": 100, "savefig.dpi": 100, "image.cmap": "Blues"}


def style():
    """dlcourse's look for the figures drawn inside the block (`with metric_figures.style(): ...`); the caller's
    own matplotlib settings (a notebook's) are as they were afterwards."""
    return matplotlib.rc_context(STYLE)


def figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **subplots):
    """A figure and its axes (one Axes, or an array of them as `Figure.subplots` returns)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)  # tight_layout measures text with this canvas's renderer
    return fig, fig.subplots(nrows, ncols, **subplots)


def render_png(fig: Figure) -> tuple[bytes, int, int]:
    """Draw the figure once: its PNG bytes, height and width in pixels."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(out, format="PNG", compress_level=1)  # speed over a few KB
    return out.getvalue(), rgba.shape[0], rgba.shape[1]


def confusion_matrix_figure(cm: np.ndarray, class_names: list[str]):
    """One matrix: the counts in the cells, the colour the share of the true class (its recall on the
    diagonal), each row's recall at the right. One panel stays readable with 10 classes at card size."""
    k = len(class_names)
    size = min(9.0, max(4.6, 0.5 * k + 1.6))
    fig, ax = figure((size + 0.6, size))
    rows = np.clip(cm.sum(1, keepdims=True), 1, None)
    norm = cm / rows
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(k), class_names, rotation=45 if max(map(len, class_names)) > 3 else 0, ha="right")
    ax.set_yticks(range(k), class_names)
    font = 9 if k <= 10 else max(5, 9 - (k - 10) // 3)
    for i in range(k):
        for j in range(k):
            if cm[i, j] or i == j:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=font,
                        color="white" if norm[i, j] > 0.5 else "black")
    for i in range(k):
        ax.text(k - 0.4, i, f"{100 * norm[i, i]:.0f}%", ha="left", va="center", fontsize=font - 1, color="0.3",
                clip_on=False)
    total = int(cm.sum())
    fig.suptitle(f"confusion matrix, test set: {int(np.trace(cm))} of {total} right\n"
                 "cells: counts; colour: share of the true class; right: recall", x=0.02, ha="left")
    fig.tight_layout()
    return fig


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]]):
    """curves: label -> (fpr, tpr, auc)."""
    fig, ax = figure((5, 5))
    for label, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve (test set)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


@torch.no_grad()
def decision_boundary_figure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str,
                             class_names: list[str], max_points: int = 2000, resolution: int = 200):
    """The classifier's probability (binary) or chosen class over the plane, with test points on top."""
    device = next(model.parameters()).device
    xn, yn = x.cpu().numpy(), y.cpu().numpy()
    lo, hi = xn.min(0) - 0.5, xn.max(0) + 0.5
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = torch.tensor(np.stack([g0.ravel(), g1.ravel()], 1), dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    out = model(grid).float()
    model.train(was_training)
    fig, ax = figure((6, 5))
    if task == "binary":
        z = torch.sigmoid(out.squeeze(-1)).cpu().numpy().reshape(g0.shape)
        cs = ax.contourf(g0, g1, z, levels=20, cmap="RdBu_r", alpha=0.6)
        ax.contour(g0, g1, z, levels=[0.5], colors="k", linewidths=1.5)
        fig.colorbar(cs, ax=ax, label=f"P({class_names[1]})")
    else:
        z = out.argmax(-1).cpu().numpy().reshape(g0.shape)
        ax.contourf(g0, g1, z, levels=np.arange(len(class_names) + 1) - 0.5, cmap="tab10", alpha=0.3)
    idx = np.random.default_rng(0).permutation(len(xn))[:max_points]
    for c, name in enumerate(class_names):
        sel = idx[yn[idx] == c]
        ax.scatter(xn[sel, 0], xn[sel, 1], s=4, label=name, alpha=0.7)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title("decision boundary (test points)")
    ax.legend(loc="upper left", fontsize=8, markerscale=3)
    fig.tight_layout()
    return fig


def regression_figure(preds: np.ndarray, targets: np.ndarray):
    fig, ax = figure((5, 5))
    p, t = preds.ravel(), targets.ravel()
    ax.scatter(t, p, s=3, alpha=0.4)
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title("predicted vs true (test set)")
    fig.tight_layout()
    return fig


def lr_find_figure(lrs: list[float], losses: list[float], suggestion: float | None):
    """The learning-rate finder's smoothed training loss against the rate tried (log axis), the
    suggested rate marked (where the loss falls fastest)."""
    fig, ax = figure((6, 4))
    lr, loss = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    finite = np.isfinite(loss)
    ax.plot(lr[finite], loss[finite], lw=1.5)
    ax.set_xscale("log")
    if suggestion is not None:
        at = int(np.argmin(np.abs(lr - suggestion)))
        ax.axvline(suggestion, color="C3", ls="--", lw=0.8)
        ax.plot([suggestion], [loss[at]], "o", color="C3", label=f"suggested lr {suggestion:.3g}")
        ax.legend(loc="upper left")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title(f"learning-rate finder: {len(lr)} steps" + ("" if suggestion is not None else ", no suggestion"))
    fig.tight_layout()
    return fig
