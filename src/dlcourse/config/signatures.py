"""Constructor signatures of the classes a config names, without importing torch or Lightning.

The project's own classes (and a user's, in their own package) are read from their source with
`ast`: argument names, whether each has a default, and the annotation, evaluated against the
types in `dlcourse.config.types` and `typing` (anything else counts as "any value"). `**kwargs`
is followed into the base classes, as the constructor forwards it. Class-level constants such as
a data module's `task = "binary"` come along (`Signature.attrs`).

The torch and Lightning classes the configs use are recorded in `recorded.json` by
`scripts/record_signatures.py`; tests/test_schema.py fails when a release changes one of them.
"""

from __future__ import annotations

import importlib
import inspect
import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from dlcourse.config.source import from_source, heavy
from dlcourse.config.spec import Param, Signature, UnknownTarget, evaluate

RECORDED = Path(__file__).with_name("recorded.json")
# Values dlcourse resolves itself before it builds the Trainer (dlcourse.machine): allowed besides the
# recorded ones.
RESOLVED = {(t, "precision"): Literal["auto"] for t in ("lightning.Trainer", "lightning.pytorch.Trainer")}


def base_signature(target: str | None) -> Signature:
    """A base class's signature; torch/Lightning bases that are not recorded (nn.Module,
    LightningDataModule) take no arguments a config could set, and are not imported."""
    if target is None or (heavy(target) and target not in _recorded()):
        return Signature(target or "?")
    return signature(target)


@cache
def _recorded() -> dict:
    return json.loads(RECORDED.read_text())


def recorded_targets() -> frozenset[str]:
    return frozenset(_recorded())


def _from_record(target: str) -> Signature | None:
    entry = _recorded().get(target)
    if entry is None:
        return None
    if isinstance(entry, str):  # an alias, e.g. lightning.pytorch.trainer.Trainer
        return signature(entry)
    params = {p["name"]: Param(p["name"], evaluate(p["type"]) | RESOLVED[target, p["name"]]
                               if (target, p["name"]) in RESOLVED else evaluate(p["type"]), p["required"])
              for p in entry["params"]}
    return Signature(target, params, open=entry["open"])


def _from_import(target: str) -> Signature:
    """Last resort for a class outside the project with no readable source: import it."""
    module_name, _, cls_name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError) as e:
        raise UnknownTarget(str(e)) from None
    if not inspect.isclass(obj):
        raise UnknownTarget(f"{target} is not a class")
    sig = Signature(target)
    for p in list(inspect.signature(obj).parameters.values()):
        if p.kind == p.VAR_KEYWORD:
            sig.open = True
        elif p.kind != p.VAR_POSITIONAL:
            tp = evaluate(p.annotation) if isinstance(p.annotation, str) else (Any if p.annotation is p.empty else p.annotation)
            sig.params[p.name] = Param(p.name, tp, required=p.default is p.empty)
    return sig


@cache
def signature(target: str) -> Signature:
    """What `_target_: <target>` accepts. Raises UnknownTarget when it names nothing."""
    target = str(target)
    if not target or "." not in target:
        raise UnknownTarget("not a dotted name (module.Class)")
    recorded = _from_record(target)
    if recorded is not None:
        return recorded
    if heavy(target):  # a torch/Lightning class that is not recorded: its own signature, at import cost
        return _from_import(target)
    return from_source(target, base_signature) or _from_import(target)
