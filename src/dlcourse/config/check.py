"""Does a config value fit a type? `problem(value, tp)` says why not, in words a user reads.

Types are ordinary typing objects (`int`, `list[int]`, `Literal[...]`, `X | None`,
`Annotated[float, Interval(...)]`); YAML gives ints where floats are wanted and lists where
tuples are, and both are fine. Anything the checker does not understand is accepted.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from dlcourse.config.types import Interval, MinLen

NONE = type(None)


def _parts(tp) -> tuple[Any, list]:
    """(base type, [Interval/MinLen constraints]) of a possibly Annotated type."""
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        return base, [m for m in meta if isinstance(m, Interval | MinLen)]
    return tp, []


def _options(tp) -> list:
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return list(get_args(tp))
    return [tp]


def is_any(tp) -> bool:
    return tp is Any or tp is object or isinstance(tp, typing.TypeVar)


def describe(tp, plural: bool = False) -> str:
    """`an integer >= 1`, `a list of integers >= 1`, `a number or null`, ..."""
    options = _options(tp)
    if len(options) > 1:
        words = [describe(o, plural) for o in options if o is not NONE]
        if NONE in options:
            words.append("null")
        return " or ".join(words)
    base, meta = _parts(tp)
    bounds = " ".join(m.describe() for m in meta if isinstance(m, Interval))
    origin = get_origin(base)
    if origin is Literal:
        return ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in get_args(base))
    if base is NONE or base is None:
        return "null"
    if base is bool:
        return "true or false"
    if base is int:
        return ("integers" if plural else "an integer") + (f" {bounds}" if bounds else "")
    if base is float:
        return ("numbers" if plural else "a number") + (f" {bounds}" if bounds else "")
    if base is str:
        return "strings" if plural else "a string"
    if origin in (list, tuple) or base in (list, tuple):
        args = [a for a in get_args(base) if a is not Ellipsis]
        inner = f" of {describe(args[0], plural=True)}" if len(set(map(str, args))) == 1 else ""
        non_empty = "non-empty " if any(isinstance(m, MinLen) and m.n >= 1 for m in meta) else ""
        return ("lists" if plural else f"a {non_empty}list") + inner
    if origin is dict or base is dict:
        return "mappings" if plural else "a mapping"
    return getattr(base, "__name__", str(base))


def problem(value, tp) -> str | None:
    """None if `value` fits `tp`, else what is wrong ("must be ...", "allowed: ...")."""
    if fits(value, tp):
        return None
    options = [o for o in _options(tp) if o is not NONE]
    if len(options) == 1 and get_origin(_parts(options[0])[0]) is Literal and NONE not in _options(tp):
        return "allowed: " + ", ".join(map(str, get_args(_parts(options[0])[0])))
    why = f"must be {describe(tp)}"
    if isinstance(value, float) and not math.isfinite(value):  # inf passes "> 0"; the line says what it lacks
        return why.replace("a number", "a finite number")
    return why


def fits(value, tp) -> bool:
    if is_any(tp):
        return True
    options = _options(tp)
    if len(options) > 1:
        return any(fits(value, o) for o in options)
    base, meta = _parts(tp)
    if is_any(base):
        return True
    origin = get_origin(base)
    if origin is Literal:
        return any(value == v and type(value) is type(v) for v in get_args(base))
    if base is NONE or base is None:
        return value is None
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and _within(value, meta)
    if base is float:
        # inf and nan fit no setting: they pass a bound such as > 0 or none at all, then train nothing
        return (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
                and _within(value, meta))
    if base is str:
        return isinstance(value, str)
    if origin in (list, tuple) or base in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if any(isinstance(m, MinLen) and len(value) < m.n for m in meta):
            return False
        args = get_args(base)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(fits(v, a) for v, a in zip(value, args, strict=True))
        item = args[0] if args else Any
        return all(fits(v, item) for v in value)
    if origin is dict or base is dict:
        return isinstance(value, dict)
    return True  # a class we cannot check from a YAML value (e.g. a tensor type): leave it to the constructor


def _within(value, meta: list) -> bool:
    return all(m.contains(value) for m in meta if isinstance(m, Interval))
