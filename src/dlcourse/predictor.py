"""A trained model from Python: `dlcourse.load(run dir or checkpoint)` predicts on what a user has and
evaluates on its data, exactly as `dlcourse-eval` (dlcourse.evaluate, the command line over this module).

    p = dlcourse.load("outputs/iris_mlp/<run>")       # its best checkpoint; or a .ckpt file
    p.predict(pd.read_csv("examples/flowers.csv"))      # the table dlcourse-eval predict= writes
    p.predict(np.array([5.1, 3.5, 1.4, 0.2]))           # raw features in training column order
    p.evaluate("test")                                  # the metrics dlcourse-eval prints (nothing written)
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

from dlcourse import predictor_inputs
from dlcourse.build import build_datamodule, build_model, check_device
from dlcourse.checkpoints import read_checkpoint, resolve_checkpoint
from dlcourse.config.validate import validate
from dlcourse.errors import CheckpointError, ConfigError, DataError
from dlcourse.intervals import accuracy_interval, task_intervals
from dlcourse.machine import resolve_precision
from dlcourse.task import Task

CSV_SUFFIXES = (".csv", ".tsv")
CHUNK = 256  # images per forward pass: a large folder of images is not one batch


def read(path: Path, dotlist: list[str]):
    """The run's config (with `data.*`/`trainer.*` overrides), its task with the checkpoint's weights, its
    data module holding the training preprocessing (scales, categories) and that state itself."""
    ckpt = read_checkpoint(path, need=("state_dict", "dlcourse_config", "dlcourse_io"))
    stored = OmegaConf.create(ckpt["dlcourse_config"])
    if OmegaConf.select(stored, "data.download", default=None):  # a checkpoint from someone else may not make
        stored.data.download = False  # this machine fetch files into a folder it names: data.download=true asks
    cfg = OmegaConf.merge(stored, OmegaConf.from_dotlist(list(dotlist)))
    validate(cfg)  # the stored config is data: checked like the command line before anything is built
    check_device(cfg)  # trainer.accelerator=gpu on a machine without one: one line, not Lightning's traceback
    io = ckpt["dlcourse_io"]
    model = build_model(cfg, io["input_shape"], io["num_outputs"], io.get("normalize"))
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
    return cfg, task, dm, state


def evaluate(cfg, task: Task, dm, split: str) -> dict:
    """The metrics of `split` (test|val), as training reports them; the data is rebuilt by `dm`."""
    dm.setup("test")
    n = len(dm.splits[split][1])
    if n == 0:
        raise DataError(f"split={split}: this model's {split} split is empty "
                        "(a cv.refit model trained on train+val; evaluate it with split=test)")
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator))
    if split == "val":
        dm.test_dataloader = dm.val_dataloader  # evaluate the val split through the test loop
    with warnings.catch_warnings():  # Lightning's notices about its own internals and small data, for this call
        warnings.filterwarnings("ignore", message=".*(LeafSpec|does not have many workers).*")
        trainer.test(task, datamodule=dm, verbose=False)
    metrics = {k.replace("test/", f"{split}/"): v for k, v in task.test_results.items()}
    if f"{split}/acc" in metrics:  # as in training's metrics.json: how precise this split's accuracy is
        metrics.update(accuracy_interval(split, metrics[f"{split}/acc"], n))
    metrics.update(task_intervals(task, dm, split))  # regression: bootstrap intervals of the mse and mae
    return metrics


def predict_csv(p: Predictor, path: Path):
    """A CSV file's rows with the predictions added (what `dlcourse-eval predict=FILE` writes)."""
    from dlcourse.data.csv import read_csv

    read = getattr(p._dm, "read", None)  # a CSV model reads its rows as it read its training table
    return p.predict_table(read(Path(path), key="predict") if read else read_csv(Path(path), key="predict"),
                           name=str(path))


def load(path, *overrides: str) -> Predictor:
    """A run directory (its best checkpoint, else checkpoints/last.ckpt) or a .ckpt file, ready to predict
    and evaluate. `overrides`: `data.KEY=V` / `trainer.KEY=V`, as dlcourse-eval takes them."""
    bad = [o for o in overrides if not (isinstance(o, str) and "=" in o and o.split(".")[0] in ("data", "trainer"))]
    if bad:
        raise ConfigError("overrides", bad[0], "allowed: data.KEY=VALUE or trainer.KEY=VALUE strings")
    return Predictor(resolve_checkpoint(path), list(overrides))


class Predictor:
    """A trained model and the preprocessing of its data: `predict(x)` -> DataFrame, `evaluate(split)` -> dict.
    Nothing is written: not by loading, predicting or evaluating."""

    def __init__(self, checkpoint: Path, overrides: list[str] = ()):
        self.checkpoint = Path(checkpoint)
        self.run_dir = self.checkpoint.parent.parent if self.checkpoint.parent.name == "checkpoints" else self.checkpoint.parent
        self._cfg, self._task, self._dm, self._state = read(self.checkpoint, list(overrides))
        self.config: dict = OmegaConf.to_container(self._cfg, resolve=True)
        io = self._task.io
        self.model = self._task.model.eval()
        self.task: str = io["task"]
        self.class_names: list[str] | None = io.get("class_names") if self.task != "regression" else None
        self.inputs: str = getattr(self._dm, "inputs", "table")  # table | image | sequence
        self.feature_names: list[str] | None = io.get("feature_names") if self.inputs == "table" else None
        self.input_shape: tuple[int, ...] = tuple(io["input_shape"])

    # -- predictions --------------------------------------------------------------------------------
    def predict(self, x):
        """Predictions as a DataFrame, one row per example: `prediction` (the class name) and one
        `prob_<class>` per class for classification; `prediction` (or `prediction_0`, ... for several
        outputs) for regression, in the target's own units. `x` is one of:

        - a DataFrame or a .csv path: its rows with the predictions added, exactly what `dlcourse-eval
          predict=` writes (a table's feature columns by name, encoded and scaled as in training; for
          images and series, the C*H*W pixels or n_steps values of one example per row, as below);
        - tables: a numpy array / tensor of raw features, (n, n_features) in training column order or one
          row (n_features,);
        - images: an image file, a folder (its images, recursively, sorted) or a list of files: a `path`
          column first; or pixels, (N, C, H, W), (N, H, W), (C, H, W) or (H, W), uint8 0-255 or float in
          [0, 1] (a 3-D array is one image when its first size is the model's channel count). Files and
          arrays of another size or channel count are converted and resized as training read its files
          (PIL, bilinear; floats via 8-bit pixels); then normalised with the training statistics;
        - series: windows, (N, n_steps), (N, n_steps, 1) or one (n_steps,), in the series' own units.
          One row is one window's forecast, in the series' own units: for heads `last` and `iterative`
          the next `horizon` values (`prediction_<k>` is step k+1 after the window); for `seq2seq`
          n_steps x horizon values, after every step t the next horizon ones (column t * horizon + k),
          the last `horizon` columns being the forecast after the window's last step.
        """
        import numpy as np
        import pandas as pd

        if isinstance(x, pd.DataFrame):
            return self.predict_table(x, name="the DataFrame")
        if isinstance(x, str | Path) and Path(x).suffix.lower() in CSV_SUFFIXES:
            return predict_csv(self, Path(x))
        if self.inputs == "image" and (isinstance(x, str | Path) or (
                isinstance(x, list | tuple) and x and all(isinstance(i, str | Path) for i in x))):
            return self._predict_files(x)
        if isinstance(x, np.ndarray | torch.Tensor):
            return pd.DataFrame(self._outputs(self._from_array(x)))
        raise DataError(f"cannot predict on {type(x).__name__}: expected {predictor_inputs.expected(self)}")

    def predict_table(self, df, name: str = "the table"):
        """`df` with `prediction` (and `prob_<class>`) columns added; `name` is what errors call it."""
        import numpy as np
        import pandas as pd

        dm, names = self._dm, self._task.io.get("feature_names")
        missing = [n for n in names or [] if n not in df.columns]
        if missing and hasattr(dm, "inputs_from"):
            raise DataError(f"{name} needs the columns {', '.join(names)} (the training table's features, any order); "
                            f"it lacks {', '.join(map(str, missing))}")
        if hasattr(dm, "inputs_from"):  # a table: encoded and scaled as in training (categories, statistics)
            x = dm.inputs_from(df, where=name)
        elif self.inputs == "sequence" and names and not missing and len(names) < self.input_shape[0]:
            return predictor_inputs.series_frame(self, df, names)  # the training series' own columns, rows in time order
        else:
            cols = names if names and not missing else [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
            n_in = int(torch.Size(self.input_shape).numel())
            if len(cols) != n_in:
                raise DataError(f"{name} needs the columns {', '.join(names or [])} (or exactly {n_in} numeric columns); "
                                f"it has {', '.join(map(str, df.columns))}")
            values = df[cols].to_numpy(dtype="float32")
            if not np.isfinite(values).all():  # an empty cell: never a prediction from NaN
                row, col = (~np.isfinite(values)).nonzero()
                raise DataError(f"column {cols[col[0]]!r} of {name} has a missing or non-finite value at line "
                                f"{int(row[0]) + 2}; fill or drop it")
            # one example per row, in the model's input shape (images: C*H*W pixels; series: n_steps values)
            x = dm.preprocess(torch.tensor(values).reshape(len(df), *self.input_shape))
        result = df.copy()
        for column, values in self._outputs(x).items():
            result[column] = values
        return result

    def _outputs(self, x: torch.Tensor) -> dict:
        """Model inputs -> {column: values}: class and probabilities, or values in the target's units."""
        device = next(self.model.parameters(), torch.empty(0)).device
        self.model.eval()
        with torch.no_grad():
            parts = x.split(CHUNK) if self.inputs == "image" and len(x) else [x]  # tables, series: as dlcourse-eval
            out = torch.cat([self.model(part.to(device)).float().cpu() for part in parts])
        if self._task.target_scale is not None:  # back to the target's own units
            out = out * self._task.target_scale[1] + self._task.target_scale[0]
        if self.inputs == "sequence":  # windows are given in the series' units: forecasts in them too
            out = out * getattr(self._dm, "std", 1.0) + getattr(self._dm, "mean", 0.0)
        classes = self.class_names
        if self.task == "binary":
            p = torch.sigmoid(out.squeeze(-1))
            return {"prediction": [classes[int(v)] for v in (p > 0.5).long()],
                    f"prob_{classes[0]}": (1 - p).numpy(), f"prob_{classes[1]}": p.numpy()}
        if self.task == "multiclass":
            p = torch.softmax(out, -1)
            return {"prediction": [classes[int(v)] for v in p.argmax(-1)],
                    **{f"prob_{c}": p[:, i].numpy() for i, c in enumerate(classes)}}
        flat = out.reshape(len(x), -1)
        return {"prediction" if flat.shape[1] == 1 else f"prediction_{j}": flat[:, j].numpy() for j in range(flat.shape[1])}

    def _from_array(self, x) -> torch.Tensor:
        convert = {"image": predictor_inputs.image_array, "sequence": predictor_inputs.series_array}
        return convert.get(self.inputs, predictor_inputs.table_array)(self, x)

    def _predict_files(self, x):
        import pandas as pd

        files, x = predictor_inputs.image_files_of(self, x)
        return pd.DataFrame({"path": [str(f) for f in files], **self._outputs(x)})

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, split: str = "test") -> dict:
        """The metrics of the test or val split, as `dlcourse-eval split=...` prints them (its data read
        again, as training built it); nothing is written."""
        if split not in ("test", "val"):
            raise ConfigError("split", split, "allowed: test, val")
        dm = build_datamodule(self._cfg)  # a fresh one: rebuilding the data never touches predict's scaling
        if self._state:
            dm.load_state_dict(self._state)
        try:
            return evaluate(self._cfg, self._task, dm, split)
        finally:
            self.model.cpu().eval()

    def _facts(self) -> list[tuple[str, str]]:
        shape = "x".join(map(str, self.input_shape))
        inputs = {"table": f"{len(self.feature_names or [])} features ({', '.join(self.feature_names or [])})"
                  if self.feature_names else f"{shape} values",
                  "image": f"images {shape} (C x H x W)", "sequence": f"windows of {self.input_shape[0]} steps"}
        classes = self.class_names or []
        shown = ", ".join(classes[:10]) + (f", ... ({len(classes)})" if len(classes) > 10 else "")
        facts = [("experiment", str(self.config.get("name"))), ("task", self.task), ("inputs", inputs[self.inputs])]
        return [*facts, *([("classes", shown)] if classes else []), ("checkpoint", str(self.checkpoint))]

    def __repr__(self) -> str:
        return "Predictor(" + ", ".join(f"{k}={v}" for k, v in self._facts()) + ")"

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{escape(v)}</td></tr>"
                       for k, v in self._facts())
        return f"<table><caption style='text-align:left'><b>dlcourse Predictor</b></caption>{rows}</table>"
