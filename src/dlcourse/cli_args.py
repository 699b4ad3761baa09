"""The `key=value` command lines of dlcourse-eval and dlcourse-export: the command's own keys, and
`data.*` / `trainer.*` overrides of the checkpoint's stored config. A bad argument is one line, exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

from dlcourse.errors import ConfigError, fail


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


def _flag_values(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    found = []
    for i, a in enumerate(argv):
        flag, eq, value = a.partition("=")
        if flag in flags:
            found.append(value if eq else (argv[i + 1] if i + 1 < len(argv) else ""))
    return found


def check_config_flags(argv: list[str]) -> None:
    """--config-path and --config-name that name nothing: one line here, not Hydra's six and exit 1."""
    from dlcourse.compose import conf_dir

    folders = [conf_dir()]
    for flag, value in [("--config-path", v) for v in _flag_values(argv, ("--config-path", "-cp"))] + \
                       [("--config-dir", v) for v in _flag_values(argv, ("--config-dir", "-cd"))]:
        if not Path(value).expanduser().is_dir():
            raise ConfigError(message=f"{flag}={value} is invalid: no such folder")
        folders.append(Path(value).expanduser())
    for name in _flag_values(argv, ("--config-name", "-cn")):
        if not any((f / name).is_file() or (f / f"{name}.yaml").is_file() for f in folders):
            raise ConfigError(message=f"--config-name={name} is invalid: no {name}.yaml in "
                                      f"{', '.join(map(str, folders))}; dlcourse-train's config is train "
                                      "(choose a recipe with experiment=NAME)")
