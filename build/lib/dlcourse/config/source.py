"""Reading a class's constructor from its module's source with `ast`, without importing the module
(used by dlcourse.config.signatures for the project's classes and a user's own)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from dlcourse.config.spec import UNKNOWN, Param, Signature, UnknownTarget, evaluate

# Packages whose modules are never read nor imported to know a signature (importing costs seconds):
# the classes of theirs that configs use are recorded (signatures.py).
HEAVY = ("torch", "torchvision", "torchmetrics", "lightning", "pytorch_lightning")
TYPE_NAMES = ("typing", "typing_extensions", "dlcourse.config.types")


@dataclass
class _Module:
    name: str
    tree: ast.Module
    imports: dict[str, str]  # local name -> dotted origin ("nn" -> "torch.nn", "Tabular" -> "dlcourse.data.tabular.Tabular")
    names: dict[str, Any]  # names an annotation may use: typing, dlcourse.config.types, this module's aliases


def heavy(dotted: str) -> bool:
    return dotted.split(".")[0] in HEAVY


@cache
def _module(name: str) -> _Module | None:
    """The parsed source of a module, or None when it has none we can read."""
    if heavy(name):
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    tree = ast.parse(Path(spec.origin).read_text(), filename=spec.origin)
    package = name if spec.submodule_search_locations else name.rpartition(".")[0]
    imports: dict[str, str] = {}
    names: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                imports[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:
                origin = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([origin] if origin else []))
            for a in node.names:
                imports[a.asname or a.name] = f"{origin}.{a.name}"
                if origin in TYPE_NAMES:
                    names[a.asname or a.name] = getattr(importlib.import_module(origin), a.name, Any)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            names[node.targets[0].id] = evaluate(ast.unparse(node.value), names)  # e.g. Pool = Literal["max", "avg"]
    return _Module(name, tree, imports, names)


def _literal(node: ast.expr | None) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return UNKNOWN
    return list(value) if isinstance(value, tuple) else value


def _class_def(module: _Module, name: str) -> ast.ClassDef | str | None:
    """The class's definition in this module, or the dotted name it was imported from."""
    for node in module.tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    return module.imports.get(name)


def from_source(target: str, resolve: Callable[[str | None], Signature]) -> Signature | None:
    """The signature of `target` read from its source; `resolve` gives a base class's (None: no source)."""
    module_name, _, cls_name = target.rpartition(".")
    module = _module(module_name) if module_name else None
    if module is None:
        return None
    found = _class_def(module, cls_name)
    if found is None:
        raise UnknownTarget(f"module {module_name} has no class {cls_name}")
    if isinstance(found, str):  # re-exported: follow it
        return resolve(found)
    inherited = [resolve(_resolve(module, b)) for b in found.bases]
    sig = Signature(target)
    for base in reversed(inherited):
        sig.attrs.update(base.attrs)
    for node in found.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            sig.attrs[node.targets[0].id] = _literal(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            sig.attrs[node.target.id] = _literal(node.value)
    init = next((n for n in found.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        first = inherited[0] if inherited else Signature("?")
        sig.params, sig.open = dict(first.params), first.open
        return sig
    args = init.args
    positional = [*args.posonlyargs, *args.args][1:]  # without self
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    for arg, default in pairs:
        tp = evaluate(ast.unparse(arg.annotation), module.names) if arg.annotation is not None else Any
        sig.params[arg.arg] = Param(arg.arg, tp, required=default is None)
    if args.kwarg is not None:  # **kwargs: handed on to the base class
        base = inherited[0] if inherited else Signature("?", open=True)
        for name, param in base.params.items():
            sig.params.setdefault(name, param)
        sig.open = base.open
    return sig


def _resolve(module: _Module, expr: ast.expr) -> str | None:
    """A base-class expression (`TabularDataModule`, `L.LightningDataModule`) as a dotted name."""
    text = ast.unparse(expr)
    head, _, rest = text.partition(".")
    if head in module.imports:
        return module.imports[head] + (f".{rest}" if rest else "")
    if any(isinstance(n, ast.ClassDef) and n.name == head for n in module.tree.body):
        return f"{module.name}.{text}"
    return None
