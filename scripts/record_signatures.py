"""Record the constructor signatures of the torch and Lightning classes that configs may name, so that
`dlcourse.config` validates a config without importing torch or Lightning (seconds per command).

    python scripts/record_signatures.py          # rewrite src/dlcourse/config/recorded.json
    python scripts/record_signatures.py --check  # exit 1 if the installed releases differ from it

tests/test_schema.py runs the check: a torch or Lightning release that adds, removes or renames an
argument fails the suite until this script is rerun. Types are simplified to what a YAML value can
be; REFINE narrows a few to the values that make sense (a learning rate is > 0, ...).
"""

from __future__ import annotations

import argparse
import collections.abc
import importlib
import inspect
import json
import sys
import types
import typing
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "dlcourse" / "config" / "recorded.json"

CLASSES = {
    "torch.optim": ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"],
    "torch.optim.lr_scheduler": ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                 "CosineAnnealingWarmRestarts", "ReduceLROnPlateau", "OneCycleLR", "LinearLR",
                                 "ConstantLR", "PolynomialLR", "CyclicLR"],
    "lightning.pytorch": ["Trainer"],
    "lightning.pytorch.callbacks": ["EarlyStopping", "LearningRateMonitor", "RichProgressBar", "TQDMProgressBar",
                                    "ModelCheckpoint", "RichModelSummary", "ModelSummary",
                                    "StochasticWeightAveraging", "Timer"],
    "lightning.pytorch.loggers": ["TensorBoardLogger", "CSVLogger"],
}
ALIASES = {"lightning.Trainer": "lightning.pytorch.Trainer",
           "lightning.pytorch.trainer.Trainer": "lightning.pytorch.Trainer",
           "lightning.pytorch.trainer.trainer.Trainer": "lightning.pytorch.Trainer"}
MIN_MAX = "Literal['min', 'max']"
# Narrower types than the annotations say: values a config can sensibly hold (None where the task fills it in).
REFINE = {
    "torch.optim": {"lr": "Positive", "weight_decay": "NonNegative", "momentum": "Annotated[float, Interval(ge=0, lt=1)]"},
    "torch.optim.lr_scheduler.OneCycleLR": {"max_lr": "Positive | list[Positive] | None",
                                            "total_steps": "PositiveInt | None"},
    "torch.optim.lr_scheduler.CosineAnnealingLR": {"T_max": "PositiveInt | None"},
    "torch.optim.lr_scheduler.StepLR": {"step_size": "PositiveInt", "gamma": "Positive"},
    "torch.optim.lr_scheduler.ReduceLROnPlateau": {"mode": MIN_MAX, "factor": "Annotated[float, Interval(gt=0, lt=1)]",
                                                   "patience": "NonNegativeInt"},
    "lightning.pytorch.Trainer": {"accelerator": "Literal['cpu', 'gpu', 'cuda', 'mps', 'tpu', 'auto']",
                                  "devices": "PositiveInt | list[NonNegativeInt] | Literal['auto']",
                                  "num_nodes": "PositiveInt", "max_epochs": "PositiveInt",
                                  "check_val_every_n_epoch": "PositiveInt | None", "log_every_n_steps": "PositiveInt | None"},
    "lightning.pytorch.callbacks.EarlyStopping": {"patience": "PositiveInt", "mode": MIN_MAX},
    "lightning.pytorch.callbacks.ModelCheckpoint": {"mode": MIN_MAX},
}


def simplify(tp) -> str:
    """A typing object as text in the vocabulary of dlcourse.config (builtins, typing, config.types)."""
    if tp is inspect.Parameter.empty or tp is typing.Any or isinstance(tp, str | typing.TypeVar):
        return "Any"
    if tp is type(None) or tp is None:
        return "None"
    if tp in (int, float, str, bool):
        return tp.__name__
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        parts = list(dict.fromkeys(simplify(a) for a in args))
        return "Any" if "Any" in parts else " | ".join(parts)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin in (list, collections.abc.Sequence, collections.abc.Iterable, collections.abc.MutableSequence):
        return f"list[{simplify(args[0]) if args else 'Any'}]"
    if origin is tuple:
        return "tuple[" + ", ".join("..." if a is Ellipsis else simplify(a) for a in args) + "]" if args else "list[Any]"
    if origin in (dict, collections.abc.Mapping):
        return "dict"
    return "Any"


def hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # forward references to modules not imported: fall back to the raw annotations
        return {}


def record_class(module: str, name: str) -> dict:
    cls = getattr(importlib.import_module(module), name)
    refine = {**REFINE.get(module, {}), **REFINE.get(f"{module}.{name}", {})}
    resolved = hints(cls)
    params, open_ = [], False
    for p in inspect.signature(cls).parameters.values():
        if p.kind == p.VAR_KEYWORD:
            open_ = True
        elif p.kind != p.VAR_POSITIONAL:
            tp = refine.get(p.name) or simplify(resolved.get(p.name, p.annotation))
            params.append({"name": p.name, "type": tp, "required": p.default is p.empty})
    return {"params": params, "open": open_}


def record() -> dict:
    out: dict = {f"{m}.{n}": record_class(m, n) for m, names in CLASSES.items() for n in names}
    out.update(ALIASES)
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the recorded file instead of writing it")
    args = parser.parse_args(argv)
    fresh = record()
    if args.check:
        stored = json.loads(OUT.read_text())
        changed = sorted(k for k in fresh.keys() | stored.keys() if fresh.get(k) != stored.get(k))
        if changed:
            print(f"recorded signatures differ for: {', '.join(changed)}; rerun scripts/record_signatures.py")
            return 1
        print(f"{len(fresh)} recorded signatures match the installed torch and Lightning")
        return 0
    OUT.write_text(json.dumps(fresh, indent=1) + "\n")
    print(f"wrote {len(fresh)} signatures to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
