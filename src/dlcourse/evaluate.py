"""`dlcourse-eval`: the metrics of a saved checkpoint, or its predictions on new inputs.

    dlcourse-eval ckpt_path=outputs/iris_mlp/<run>/checkpoints/last.ckpt          # test metrics
    dlcourse-eval ckpt_path=outputs/iris_mlp/<run> split=val                        # a run dir: its best checkpoint
    dlcourse-eval ckpt_path=<ckpt> predict=new_flowers.csv output=predictions.csv   # predictions to a CSV
    dlcourse-eval ckpt_path=<ckpt> data.root=/data trainer.accelerator=cpu          # change data/device settings

The run's config travels inside the checkpoint, so nothing else needs repeating. Metrics go to
stdout and to <run dir>/eval_<split>.json (a new file: the run's metrics.json is never touched).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

from dlcourse.build import build_datamodule, build_model
from dlcourse.checkpoints import read_checkpoint
from dlcourse.config.validate import validate
from dlcourse.errors import CheckpointError, DataError, DlcourseError, fail
from dlcourse.report import accuracy_interval, write_json
from dlcourse.task import Task

USAGE = "usage: dlcourse-eval ckpt_path=PATH [split=test|val] [predict=INPUTS.csv] [output=PATH] [data.KEY=V] [trainer.KEY=V]"
OWN_KEYS = ("ckpt_path", "split", "predict", "output")


def parse_args(argv: list[str]) -> tuple[dict, list[str]]:
    own, dotlist = {}, []
    for arg in argv:
        if arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        key, sep, value = arg.partition("=")
        if not sep:
            fail(f"{arg!r} is not key=value; {USAGE}")
        if key in OWN_KEYS:
            own[key] = value
        elif key.split(".")[0] in ("data", "trainer"):
            dotlist.append(arg)
        else:
            fail(f"{key}={value!r} is invalid: allowed keys are {', '.join(OWN_KEYS)}, data.*, trainer.*")
    if "ckpt_path" not in own:
        fail(f"ckpt_path is required; {USAGE}")
    if own.get("split", "test") not in ("test", "val"):
        fail(f"split={own['split']!r} is invalid: allowed: test, val")
    return own, dotlist


def resolve_checkpoint(value: str) -> Path:
    path = Path(value)
    if path.is_dir():  # a run directory: its best checkpoint (from metrics.json), else last.ckpt
        metrics = path / "metrics.json"
        best = json.loads(metrics.read_text()).get("best_checkpoint") if metrics.is_file() else None
        path = Path(best) if best and Path(best).is_file() else path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={value!r}: no such checkpoint file")
    return path


def load(path: Path, dotlist: list[str]):
    ckpt = read_checkpoint(path, need=("state_dict", "dlcourse_config", "dlcourse_io"))
    cfg = OmegaConf.merge(OmegaConf.create(ckpt["dlcourse_config"]), OmegaConf.from_dotlist(dotlist))
    validate(cfg)  # the stored config is data: checked like the command line before anything is built
    io = ckpt["dlcourse_io"]
    model = build_model(cfg, io["input_shape"], io["num_outputs"])
    task = Task(model, task=io["task"], num_classes=len(io["class_names"]) if io.get("class_names") else None,
                loss=cfg.task.loss, config=ckpt["dlcourse_config"], io=io)
    try:
        task.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit its model: {str(e).splitlines()[0]}") from None
    dm = build_datamodule(cfg)  # as in training (batching, cross-validation fold)
    state = ckpt.get(type(dm).__qualname__)
    if state:
        dm.load_state_dict(state)
    return cfg, task, dm


def evaluate(cfg, task: Task, dm, split: str) -> dict:
    dm.setup("test")
    n = len(dm.splits[split][1])
    if n == 0:
        raise DataError(f"split={split}: this model's {split} split is empty "
                        "(a cv.refit model trained on train+val; evaluate it with split=test)")
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, precision=cfg.trainer.precision)
    if split == "val":
        dm.test_dataloader = dm.val_dataloader  # evaluate the val split through the test loop
    trainer.test(task, datamodule=dm, verbose=False)
    metrics = {k.replace("test/", f"{split}/"): v for k, v in task.test_results.items()}
    if f"{split}/acc" in metrics:  # as in training's metrics.json: how precise this split's accuracy is
        metrics.update(accuracy_interval(split, metrics[f"{split}/acc"], n))
    return metrics


def predict(task: Task, dm, inputs: Path, output: Path) -> int:
    import pandas as pd

    from dlcourse.data.csv import read_csv

    df = read_csv(inputs, key="predict")
    names = task.io.get("feature_names")
    missing = [n for n in names or [] if n not in df.columns]
    if missing and hasattr(dm, "inputs_from"):
        raise DataError(f"{inputs} needs the columns {', '.join(names)} (the training table's features, any order); "
                        f"it lacks {', '.join(map(str, missing))}")
    if hasattr(dm, "inputs_from"):  # a table: encoded and scaled as in training (categories, statistics)
        x = dm.inputs_from(df)
    else:
        cols = names if names and not missing else [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        n_in = int(torch.Size(task.io["input_shape"]).numel())
        if len(cols) != n_in:
            raise DataError(f"{inputs} needs the columns {', '.join(names or [])} (or exactly {n_in} numeric columns); "
                            f"it has {', '.join(map(str, df.columns))}")
        x = dm.preprocess(torch.tensor(df[cols].to_numpy(dtype="float32")))
    task.eval()
    with torch.no_grad():
        out = task.model(x)
    if task.target_scale is not None:  # back to the target's own units
        out = out * task.target_scale[1] + task.target_scale[0]
    kind, classes = task.io["task"], task.io.get("class_names")
    result = df.copy()
    if kind == "binary":
        p = torch.sigmoid(out.squeeze(-1))
        result["prediction"] = [classes[int(v)] for v in (p > 0.5).long()]
        result[f"prob_{classes[0]}"], result[f"prob_{classes[1]}"] = (1 - p).numpy(), p.numpy()
    elif kind == "multiclass":
        p = torch.softmax(out, -1)
        result["prediction"] = [classes[int(v)] for v in p.argmax(-1)]
        for i, name in enumerate(classes):
            result[f"prob_{name}"] = p[:, i].numpy()
    else:
        flat = out.reshape(len(x), -1)
        for j in range(flat.shape[1]):
            result["prediction" if flat.shape[1] == 1 else f"prediction_{j}"] = flat[:, j].numpy()
    output.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(output, index=False)
    return len(result)


def main(argv: list[str] | None = None) -> None:
    own, dotlist = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        path = resolve_checkpoint(own["ckpt_path"])
        cfg, task, dm = load(path, dotlist)
        if "predict" in own:
            inputs = Path(own["predict"])
            output = Path(own.get("output") or inputs.with_name(inputs.stem + "_predictions.csv"))
            if output.resolve() == inputs.resolve():
                raise DataError(f"output={str(output)!r} would overwrite the inputs; choose another file")
            n = predict(task, dm, inputs, output)
            print(f"wrote {n} predictions to {output}")
            return
        split = own.get("split", "test")
        metrics = evaluate(cfg, task, dm, split)
    except DlcourseError as e:
        fail(str(e), e.exit_code)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    out = Path(own.get("output") or run_dir / f"eval_{split}.json")
    write_json(out, {"checkpoint": str(path), "split": split, **metrics})
    print(json.dumps(metrics, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
