"""What an exported graph folds in around the model: the data module's input preprocessing and the
output transform back to the target's units, as (mean, std) pairs with a sentence for the sidecar JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlcourse.errors import ExportError

if TYPE_CHECKING:
    import torch

    from dlcourse.predictor import Predictor


def input_affine(p: Predictor, dm=None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(mean, std, description) with model input = (raw - mean) / std, as `dm` (the Predictor's data
    module unless given) preprocesses raw inputs; refuses what one such step cannot express."""
    import torch

    from dlcourse.data.base import InMemoryDataModule
    from dlcourse.data.tabular import TabularDataModule

    dm = p._dm if dm is None else dm
    if p.inputs == "image":
        c = p.input_shape[0]
        mean, std = torch.tensor(dm.mean).view(1, c, 1, 1), torch.tensor(dm.std).view(1, c, 1, 1)
        return mean, std, [f"normalise each channel: (x - mean) / std with the training split's mean {_r(dm.mean)} "
                           f"and std {_r(dm.std)}"]
    if p.inputs == "sequence":
        mean, std = float(getattr(dm, "mean", 0.0)), float(getattr(dm, "std", 1.0))
        text = [] if (mean, std) == (0.0, 1.0) else [f"scale the window: (x - {mean:.6g}) / {std:.6g} (the training "
                                                     f"series' mean and std)"]
        return torch.tensor(mean), torch.tensor(std), [*text, *window_text(p)]
    categories = getattr(dm, "categories", None)
    if categories:
        raise ExportError(f"this model's table has string columns ({', '.join(categories)}) that the exported graph "
                          "cannot encode; train it on numeric columns only (data.features=[...]) to export it, or "
                          "predict with dlcourse-eval predict= / dlcourse.load")
    impute = dm.imputation_text() if isinstance(dm, TabularDataModule) else []
    if isinstance(dm, TabularDataModule) and dm.mean is not None:
        return dm.mean.float(), dm.std.float(), [*impute, f"standardise each input: (x - mean) / std with the training "
                                                 f"rows' mean {_r(dm.mean.tolist())} and std {_r(dm.std.tolist())}"]
    if isinstance(dm, TabularDataModule) or type(dm).preprocess is InMemoryDataModule.preprocess:
        return torch.tensor(0.0), torch.tensor(1.0), impute
    raise ExportError(f"{type(dm).__name__} preprocesses its inputs in its own way, which dlcourse-export "
                      "does not know how to fold into the graph")


def output_affine(p: Predictor) -> tuple[float, float, list[str]]:
    """(mean, std): values = model output * std + mean, as Predictor._outputs puts them in the target's units."""
    mean, std, text = 0.0, 1.0, []
    if p._task.target_scale is not None:
        t_mean, t_std = map(float, p._task.target_scale)
        mean, std = t_mean, t_std
        text.append(f"values * {t_std:.6g} + {t_mean:.6g}: back to the target's units (trained standardised)")
    if p.inputs == "sequence":
        s_mean, s_std = float(getattr(p._dm, "mean", 0.0)), float(getattr(p._dm, "std", 1.0))
        mean, std = mean * s_std + s_mean, std * s_std
        if (s_mean, s_std) != (0.0, 1.0):
            text.append(f"forecast * {s_std:.6g} + {s_mean:.6g}: back to the series' units")
    return mean, std, text


def window_text(p: Predictor) -> list[str]:
    """data.normalize=window: the model's own per-window scaling (dlcourse.models.window_norm), in the graph."""
    if p._task.io.get("normalize") != "window":
        return []
    if getattr(p.model, "causal", False):
        return ["then each window minus its own first value, the forecast plus it (data.normalize=window, seq2seq)"]
    return ["then each window scaled by its own mean and std, the forecast scaled back (data.normalize=window)"]


def _r(values) -> list[float]:
    return [float(f"{v:.6g}") for v in values]
