"""`dlcourse-export`: a trained model as one ONNX or TorchScript file that takes RAW inputs.

    dlcourse-export ckpt_path=outputs/iris_mlp/<run> output=iris.onnx             # ONNX (format from the suffix)
    dlcourse-export ckpt_path=<run dir or .ckpt> format=torchscript output=iris.pt  # TorchScript
    dlcourse-export ckpt_path=<run> output=iris.onnx overwrite=true                # replace an existing file
    dlcourse-export ckpt_path=<run> data.root=/data                                 # output: <run dir>/model.onnx

One graph: the training preprocessing (the data module's statistics, as constants), the model, its output
transform. Inputs, float32, any batch size N: tables N x features (training column order, numeric columns
only; NaN is a missing value, imputed as in training); images N x C x H x W pixels in [0, 1] at the training size; series N x n_steps windows in their own
units. Outputs: class probabilities (N x classes; binary: N x 2) or values in the target's own units.
<output>.json beside it tells the input name, shape and columns, the classes in output order, the
preprocessing folded in, the dlcourse version and the checkpoint. Before the file appears it is run
(onnxruntime / torch.jit.load) on the raw inputs of the checkpoint's test split and compared with
`dlcourse.load(...).predict`: a difference above 1e-4 stops the export and leaves no file.
Python: `dlcourse.export(run dir, .ckpt or dlcourse.load(...) result, output, format)`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dlcourse.cli_args import parse_key_values
from dlcourse.errors import DlcourseError, ExportError, fail
from dlcourse.export_affine import input_affine, output_affine

if TYPE_CHECKING:

    from dlcourse.export_check import Exported
    from dlcourse.predictor import Predictor

USAGE = ("usage: dlcourse-export ckpt_path=PATH [format=onnx|torchscript] [output=FILE] [overwrite=true] "
         "[data.KEY=V] [trainer.KEY=V]")
OWN_KEYS = ("ckpt_path", "format", "output", "overwrite")
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript"}
DEFAULT_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


# -- the graph -----------------------------------------------------------------------------------------
def wrap(p: Predictor) -> tuple[Exported, dict]:
    """The graph to export and the facts the sidecar JSON tells about it."""
    import copy

    from dlcourse.export_check import Exported

    in_mean, in_std, pre = input_affine(p)
    out_mean, out_std, post = output_affine(p)
    squeeze = p.inputs == "sequence" and tuple(p.input_shape[1:]) == (1,)
    fill = getattr(p._dm, "fill", None) if p.inputs == "table" else None
    indicate = list(getattr(p._dm, "indicate", None) or []) if fill is not None else []
    shape = [p.input_shape[0]] if squeeze else list(p.input_shape)
    shape = [shape[0] - len(indicate)] if indicate else shape  # raw columns: the graph adds the indicators
    if p.task == "multiclass":
        post = ["softmax over the classes"]
    elif p.task == "binary":
        post = [f"sigmoid of the logit: probability of {p.class_names[1]!r}; column 0 is 1 minus it"]
    module = Exported(copy.deepcopy(p.model).cpu().eval(), p.task, in_mean, in_std, out_mean, out_std, squeeze,
                      fill, indicate).eval()
    facts = {"input_shape": shape, "preprocessing": pre, "output_transform": post,
             "output_scale": None if p.class_names else out_std}  # None: probabilities
    return module, facts


# -- the file --------------------------------------------------------------------------------------------
def check_output(output: Path, checkpoint: Path, overwrite: bool) -> None:
    """One line for an output that is a folder, the checkpoint itself, or (without overwrite) a file already."""
    if output.is_dir():
        raise ExportError(f"output={str(output)!r} is a directory; give a file name, e.g. {output / 'model.onnx'}")
    if output.resolve() == checkpoint.resolve():
        raise ExportError(f"output={str(output)!r} is the checkpoint itself; choose another file")
    for path in (output, sidecar_path(output)):
        if path.exists() and (path.is_dir() or not overwrite):
            raise ExportError(f"output={str(output)!r}: {path} exists already; choose another file or set overwrite=true")


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + ".json")


def pick_format(fmt: str | None, output: Path | None) -> str:
    from_suffix = SUFFIXES.get(output.suffix.lower()) if output is not None else None
    fmt = (fmt or from_suffix or "onnx").lower()
    if fmt not in DEFAULT_SUFFIX:
        raise ExportError(f"format={fmt!r} is invalid: allowed: onnx, torchscript")
    if from_suffix and from_suffix != fmt:
        raise ExportError(f"output={str(output)!r} has the suffix of {from_suffix} files, but format={fmt}; "
                          f"name it *{DEFAULT_SUFFIX[fmt]}")
    return fmt


def export_predictor(p: Predictor, output=None, format: str | None = None, overwrite: bool = False) -> Path:
    """Write `p`'s model with its preprocessing to `output` (default <run dir>/model.onnx or .pt) and the
    sidecar <output>.json; check the file against `p.predict` on the test split's raw inputs first."""
    from dlcourse.export_check import reference, verify, write_file

    fmt = pick_format(format, Path(output) if output is not None else None)
    output = Path(output) if output is not None else p.run_dir / f"model{DEFAULT_SUFFIX[fmt]}"
    check_output(output, p.checkpoint, overwrite)
    module, facts = wrap(p)
    ref = reference(p, facts["input_shape"])
    info = describe(p, fmt, facts, output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    tmp_json = sidecar_path(tmp)
    try:
        info["exporter"] = write_file(module, ref, fmt, tmp, info)
        info["check"] = verify(tmp, fmt, ref, facts["output_scale"])
        tmp_json.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, output)
        os.replace(tmp_json, sidecar_path(output))
    finally:
        for path in (tmp, tmp_json):
            path.unlink(missing_ok=True)
    return output


def export(ckpt_or_run, output=None, format: str | None = None, overwrite: bool = False,
           overrides: tuple[str, ...] | list[str] = ()) -> Path:
    """A run directory (its best checkpoint), a .ckpt file or a loaded Predictor as one ONNX or TorchScript
    file taking raw inputs, plus <output>.json; returns the path written. `overrides`: data.KEY=V / trainer.KEY=V."""
    from dlcourse.predictor import Predictor, load, resolve_checkpoint

    pick_format(format, Path(output) if output is not None else None)  # before the model is loaded
    if isinstance(ckpt_or_run, Predictor):
        return export_predictor(ckpt_or_run, output, format, overwrite)
    if output is not None:
        check_output(Path(output), resolve_checkpoint(ckpt_or_run), overwrite)
    return export_predictor(load(ckpt_or_run, *overrides), output, format, overwrite)


def describe(p: Predictor, fmt: str, facts: dict, output: Path) -> dict:
    """The sidecar JSON: how to feed the file and read what it gives."""
    import dlcourse
    from dlcourse.export_check import output_meaning

    shape = [-1, *facts["input_shape"]]
    layout = {"table": "N x features (raw values, training column order)",
              "image": "N x C x H x W pixels, floats in [0, 1] (uint8 / 255, 16-bit / 65535)",
              "sequence": "N x n_steps window values, in the series' own units"}[p.inputs]
    info = {"format": fmt, "file": output.name, "task": p.task, "experiment": p.config.get("name"),
            "model": str((p.config.get("model") or {}).get("_target_", "")),
            "input": {"name": "input" if fmt == "onnx" else "(positional)", "dtype": "float32", "shape": shape,
                      "batch": "N: any size (the -1)", "layout": layout}}
    if p.inputs == "table" and p.feature_names:
        info["input"]["columns"] = list(p.feature_names)
    info["output"] = {"name": "output" if fmt == "onnx" else "(the returned tensor)", "dtype": "float32",
                      **output_meaning(p)}
    if p.class_names:
        info["classes"] = list(p.class_names)
    info.update(preprocessing=facts["preprocessing"], output_transform=facts["output_transform"],
                dlcourse_version=dlcourse.__version__, checkpoint=str(p.checkpoint.resolve()))
    return info


# -- command line ----------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> tuple[dict, list[str]]:
    own, dotlist = parse_key_values(argv, OWN_KEYS, USAGE, __doc__)
    if own.get("overwrite", "false").lower() not in BOOLS:
        fail(f"overwrite={own['overwrite']!r} is invalid: allowed: true, false")
    return own, dotlist


def main(argv: list[str] | None = None) -> None:
    own, dotlist = parse_args(sys.argv[1:] if argv is None else argv)
    from dlcourse.lean import console_setup

    console_setup()  # before torch is imported
    try:
        path = export(own["ckpt_path"], own.get("output") or None, own.get("format") or None,
                      BOOLS[own.get("overwrite", "false").lower()], dotlist)
        info = json.loads(sidecar_path(path).read_text())
    except DlcourseError as e:
        fail(str(e), e.exit_code)
    check = info["check"]
    print(f"wrote {path} ({info['format']}: {info['input']['layout']} -> {info['output']['meaning']})")
    print(f"checked on {check['inputs']}: largest difference from dlcourse.load(...).predict {check['max_abs_diff']:.2g}")
    print(f"wrote {sidecar_path(path)}")


if __name__ == "__main__":
    main()
