"""What a config node may hold: a class's parameters and their types (`Signature`), and annotations
evaluated without importing anything beyond typing and dlcourse.config.types."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

from dlcourse.config import types as dl_types


class UnknownTarget(Exception):
    """A `_target_` whose signature cannot be known (no such module or class)."""


@dataclass(frozen=True)
class Param:
    name: str
    type: Any = Any
    required: bool = False


@dataclass
class Signature:
    target: str
    params: dict[str, Param] = field(default_factory=dict)
    open: bool = False  # takes keyword arguments it does not declare (**kwargs passed on to something we cannot see)
    attrs: dict[str, Any] = field(default_factory=dict)


class _Unknown:
    """Stands for a name an annotation uses that we cannot (or will not) import: any value fits."""

    def __getattr__(self, name):
        return self

    def __getitem__(self, item):
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __or__(self, other):
        return Any

    __ror__ = __or__


UNKNOWN = _Unknown()


class _Names(dict):
    def __missing__(self, key):
        return UNKNOWN


def _base_names() -> dict:
    names = {name: getattr(typing, name) for name in ("Any", "Literal", "Optional", "Union", "Annotated")}
    names.update(Sequence=list, Iterable=list, List=list, Tuple=tuple, Mapping=dict, Dict=dict,
                 Callable=Any, Path=str, PathLike=str)
    names.update({k: v for k, v in vars(dl_types).items() if not k.startswith("_")})
    names.update(int=int, float=float, str=str, bool=bool, list=list, tuple=tuple, dict=dict, None_=None,
                 object=Any, type=Any)
    return names


def evaluate(annotation: str, names: dict | None = None) -> Any:
    """An annotation's source text as a typing object; unknown names are Any."""
    scope = _Names({**_base_names(), **(names or {})})
    try:
        value = eval(annotation, {"__builtins__": {}}, scope)  # noqa: S307 (names only: no builtins, no imports)
    except Exception:
        return Any
    return Any if value is UNKNOWN else value
