"""dlcourse: configuration-driven PyTorch experiments for an introductory deep-learning course.

From Python (a notebook, a script), with the command line's override strings:

    import dlcourse
    result = dlcourse.run("experiment=iris_mlp", "seed=3")      # as `dlcourse-train experiment=iris_mlp seed=3`
    result.metrics, result.history, result.figures, result.run_dir
    sweep = dlcourse.sweep("experiment=iris_mlp", "optimizer.lr=0.003,0.01,0.03")   # as `dlcourse-train -m ...`
    model = dlcourse.load(result.run_dir)                       # a trained model with its preprocessing
    model.predict(dataframe)
    dlcourse.export(result.run_dir, "model.onnx")              # the model with its preprocessing, checked
    dlcourse.lr_find("experiment=iris_mlp").lr_find["suggestion"]   # Lightning's learning-rate finder

Every problem the command line answers with one line raises `dlcourse.DlcourseError` (its subclasses
ConfigError, DataError, CheckpointError, ...) with that line as its message. Importing dlcourse
changes nothing in other libraries; torch and Lightning are imported on first use.
"""

from dlcourse.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DlcourseError,
    ExportError,
    NonFiniteLossError,
    SweepFailedError,
)

__version__ = "0.1.0"

_LAZY = {  # name -> module: imported on first use, so that `import dlcourse` stays light
    "run": "dlcourse.api", "sweep": "dlcourse.api", "lr_find": "dlcourse.api", "Result": "dlcourse.api",
    "SweepResult": "dlcourse.api", "load": "dlcourse.predictor", "Predictor": "dlcourse.predictor",
    "export": "dlcourse.exporting",
}

__all__ = ["CheckpointError", "ConfigError", "DataError", "DlcourseError", "ExportError", "NonFiniteLossError", "SweepFailedError",
           *_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dlcourse' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})
