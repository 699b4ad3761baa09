"""The half of dlcourse-export (dlcourse.exporting) that writes the file and proves it right: the raw inputs of
the checkpoint's test split (its model inputs with the preprocessing inverted), what `Predictor.predict`
says on them, the ONNX or TorchScript file itself, and its run (onnxruntime / torch.jit.load) compared
with those predictions."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from dlcourse.errors import DlcourseError, ExportError
from dlcourse.export_affine import input_affine

if TYPE_CHECKING:
    from dlcourse.predictor import Predictor

LIMIT = 512  # test examples the check runs on (the first ones): enough to catch a wrong constant
SYNTHETIC = 64  # random inputs when the test split cannot be read again (data moved, another machine)
TOLERANCE = 1e-4


class Exported(nn.Module):
    """Raw inputs -> the training preprocessing -> the model -> probabilities or values in the target's units."""

    def __init__(self, model: nn.Module, task: str, in_mean, in_std, out_mean, out_std, add_feature_dim: bool,
                 fill=None, indicate=()):
        super().__init__()
        self.model, self.task, self.add_feature_dim = model, task, add_feature_dim
        # tables: a NaN input is a missing value, imputed as dlcourse.Predictor does (TabularDataModule.impute)
        self.impute, self.indicators = fill is not None, len(indicate) > 0
        for name, value in (("in_mean", in_mean), ("in_std", in_std), ("out_mean", out_mean), ("out_std", out_std),
                            ("fill", 0.0 if fill is None else fill)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32).clone())
        self.register_buffer("indicate", torch.as_tensor(list(indicate), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impute:
            gaps = torch.isnan(x)
            x = torch.where(gaps, self.fill, x)
            if self.indicators:
                x = torch.cat([x, gaps.index_select(1, self.indicate).to(x.dtype)], dim=1)
        x = (x - self.in_mean) / self.in_std
        if self.add_feature_dim:  # series windows (N, n_steps) -> the model's (N, n_steps, 1)
            x = x.unsqueeze(-1)
        out = self.model(x)
        if self.task == "multiclass":
            return torch.softmax(out, dim=-1)
        if self.task == "binary":
            p = torch.sigmoid(out.flatten(1)[:, :1])
            return torch.cat([1 - p, p], dim=1)
        return out.flatten(1) * self.out_std + self.out_mean


# -- the reference: raw test inputs and what the Predictor says on them ----------------------------------
def reference(p: Predictor, shape: list[int]) -> dict:
    """{"raw": float32 inputs (N, *shape) in raw units, "expected": the Predictor's outputs on them
    (probabilities or values, N x K), "inputs": where they come from}."""
    raw, where = _test_inputs(p, shape)
    df = p.predict(raw)
    if p.class_names:
        columns = [f"prob_{c}" for c in p.class_names]
    else:
        columns = [c for c in df.columns if c == "prediction" or str(c).startswith("prediction_")]
    return {"raw": raw, "expected": df[columns].to_numpy(np.float64), "inputs": where}


def _test_inputs(p: Predictor, shape: list[int]) -> tuple[np.ndarray, str]:
    """The test split rebuilt as training built it (a fresh data module, as Predictor.evaluate does), its
    model inputs mapped back to raw units; random inputs in the training range if it cannot be rebuilt."""
    from dlcourse.build import build_datamodule

    table = p._dm  # whose statistics made the model inputs below
    try:
        dm = table = build_datamodule(p._cfg)
        if p._state:
            dm.load_state_dict(p._state)
        dm.setup("test")
        x = dm.splits["test"][0][:LIMIT].float()
        if len(x) == 0:
            raise ExportError("the test split is empty")
        mean, std, _ = input_affine(p, dm)  # the statistics that made these model inputs
        n_total = len(dm.splits["test"][0])
        where = f"{len(x)} test examples" + (f" (the first of {n_total})" if n_total > len(x) else "")
    except DlcourseError as e:
        reason = str(e)
        mean, std, _ = input_affine(p)
        g = torch.Generator().manual_seed(0)
        x = torch.rand if p.inputs == "image" else torch.randn
        x = x(SYNTHETIC, *p.input_shape, generator=g)
        if p.inputs == "image":
            x = (x - mean) / std  # uniform pixels, as model inputs
        where = f"{SYNTHETIC} random inputs (the test split could not be read again: {reason})"
    if getattr(table, "indicate", None):  # the "was missing" inputs say which raw values were NaN
        raw = table.unprocess(x).reshape(len(x), *shape)
    else:
        raw = (x * std + mean).reshape(len(x), *shape)
    if p.inputs == "image":
        raw = raw.clamp(0, 1)  # pixels: the inverse of the normalisation may step past 1 by a rounding error
    return raw.contiguous().numpy().astype(np.float32), where


def output_meaning(p: Predictor) -> dict:
    """The output's shape and what its columns are, for the sidecar JSON."""
    if p.class_names:
        return {"shape": [-1, len(p.class_names)],
                "meaning": f"probabilities of the classes {list(p.class_names)} in this order (each row sums to 1)"}
    k = int(p._task.io["num_outputs"])
    if p.inputs != "sequence":
        cols = "" if k == 1 else f" (column j is prediction_{{j}} of dlcourse-eval, j < {k})"
        return {"shape": [-1, k], "meaning": f"values in the target's own units{cols}"}
    h = int(getattr(p._dm, "horizon", k))
    if getattr(p._dm, "targets", "last") == "seq2seq":
        return {"shape": [-1, k], "meaning": f"forecasts in the series' own units: after every step t of the window "
                f"the next {h} values (column t * {h} + j is step t + j + 1); the last {h} columns are the forecast "
                f"after the window"}
    return {"shape": [-1, k], "meaning": f"the next {h} values after the window in the series' own units "
            f"(column j is step j + 1 after it)"}


# -- the file ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet():
    """The exporters' progress lines and deprecation/tracer warnings stay off the user's console."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def write_file(module: torch.nn.Module, ref: dict, fmt: str, path: Path, info: dict) -> str:
    """Export `module` to `path` (dynamic batch), traced on two raw test inputs; returns the exporter used."""
    example = torch.from_numpy(ref["raw"][:2])
    if len(example) < 2:
        example = example.repeat(2, *([1] * (example.ndim - 1)))
    model = info["model"].rsplit(".", 1)[-1] or "this model"
    if fmt == "torchscript":
        try:
            with _quiet(), torch.no_grad():
                traced = torch.jit.trace(module, example, check_trace=False)
                torch.jit.save(traced, str(path), _extra_files={"dlcourse.json": json.dumps(info)})
        except Exception as e:  # noqa: BLE001 - any tracing failure is one line naming the model
            raise ExportError(f"{model} cannot be exported to TorchScript: {_first_line(e)}") from None
        return f"torch.jit.trace (torch {torch.__version__})"
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ExportError("format=onnx needs the packages onnx and onnxruntime: pip install 'dlcourse[export]'") from None
    errors = []
    for dynamo in (True, False):  # torch.export's exporter; the TorchScript-based one if it cannot
        try:
            with _quiet():
                _onnx_export(module, example, path, dynamo)
            _add_metadata(path, info)
            return ("torch.onnx.export, torch.export-based (dynamo=True)" if dynamo else
                    "torch.onnx.export, TorchScript-based (dynamo=False)") + f", torch {torch.__version__}"
        except Exception as e:  # noqa: BLE001
            errors.append(_first_line(e))
    raise ExportError(f"{model} cannot be exported to ONNX: {errors[0]} (the TorchScript-based exporter: {errors[-1]})")


def _onnx_export(module, example, path: Path, dynamo: bool) -> None:
    names = {"input_names": ["input"], "output_names": ["output"]}
    if dynamo:
        torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), **names)
    else:
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=17,
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}}, **names)


def _add_metadata(path: Path, info: dict) -> None:
    """The sidecar's facts inside the ONNX file too (metadata_props "dlcourse")."""
    import onnx

    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "dlcourse", json.dumps(info)
    onnx.save(proto, str(path))


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0][:300]}" if lines else type(e).__name__


# -- the check -----------------------------------------------------------------------------------------
def _runner(path: Path, fmt: str):
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("checking an ONNX file needs onnxruntime: pip install 'dlcourse[export]'") from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return (lambda x: session.run(None, {name: x})[0]), f"onnxruntime {ort.__version__} (CPUExecutionProvider)"
    with _quiet():  # torch.jit.load's deprecation warning
        module = torch.jit.load(str(path), map_location="cpu")

    def run(x):
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return run, f"torch.jit.load (torch {torch.__version__})"


def verify(path: Path, fmt: str, ref: dict, scale: float | None) -> dict:
    """Run the written file on the reference inputs (all at once, and one alone: the batch size is free)
    and compare with the Predictor; one line and no file if they differ. `scale`: None for probabilities,
    else the output's scale (values may differ by 1e-4 of it, or 1e-4 relative)."""
    try:
        run, runtime = _runner(path, fmt)
        got_all, got_one = run(ref["raw"]), run(ref["raw"][:1])
    except DlcourseError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"the exported {fmt} file does not run: {_first_line(e)}") from None
    expected = ref["expected"]
    worst = 0.0
    for got, want in ((got_all, expected), (got_one, expected[:1])):
        got = np.asarray(got, dtype=np.float64)
        if got.shape != want.shape:
            raise ExportError(f"the exported {fmt} file gives outputs of shape {got.shape} for {want.shape[0]} inputs; "
                         f"dlcourse predicts {want.shape}")
        diff = np.abs(got - want)
        allowed = TOLERANCE if scale is None else TOLERANCE * max(1.0, abs(scale)) + TOLERANCE * np.abs(want)
        if not np.all((diff <= allowed) | (np.isnan(got) & np.isnan(want))):
            raise ExportError(f"the exported {fmt} file differs from dlcourse's predictions by up to "
                         f"{float(np.nanmax(diff)):.3g} on {ref['inputs']} (allowed {TOLERANCE:g}); nothing was written")
        worst = max(worst, float(np.nanmax(diff)) if diff.size else 0.0)
    tolerance = (f"{TOLERANCE:g} absolute on probabilities" if scale is None else
                 f"{TOLERANCE:g} x max(1, output scale {abs(scale):.6g}) + {TOLERANCE:g} relative, on values")
    return {"inputs": ref["inputs"], "runtime": runtime, "max_abs_diff": worst, "tolerance": tolerance,
            "reference": "dlcourse.load(checkpoint).predict on the same raw inputs"}
