"""The `key=value` command lines of dlcourse-eval and dlcourse-export: the command's own keys, and
`data.*` / `trainer.*` overrides of the checkpoint's stored config. A bad argument is one line, exit 2."""

from __future__ import annotations

import sys

from dlcourse.errors import fail


def parse_key_values(argv: list[str], own_keys: tuple[str, ...], usage: str, doc: str | None) -> tuple[dict, list[str]]:
    """({own key: value}, [data.*/trainer.* overrides]); `-h`/`--help` prints `doc`; ckpt_path is required."""
    own, dotlist = {}, []
    for arg in argv:
        if arg in ("-h", "--help"):
            print(doc)
            sys.exit(0)
        key, sep, value = arg.partition("=")
        if not sep:
            fail(f"{arg!r} is not key=value; {usage}")
        if key in own_keys:
            own[key] = value
        elif key.split(".")[0] in ("data", "trainer"):
            dotlist.append(arg)
        else:
            fail(f"{key}={value!r} is invalid: allowed keys are {', '.join(own_keys)}, data.*, trainer.*")
    if "ckpt_path" not in own:
        fail(f"ckpt_path is required; {usage}")
    return own, dotlist
