"""What happens before Hydra starts a run: check group choices and the composed config, and
resolve `ckpt_path` for a resume. Bad input ends here with one line and exit status 2, before
any run directory is created, so it can never clobber earlier results."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from dlcourse.checkpoints import read_checkpoint
from dlcourse.errors import CheckpointError, DlcourseError

CONF_DIR = str(Path(os.environ.get("DLCOURSE_CONF", Path(__file__).resolve().parents[2] / "conf")))


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def group_options(group: str) -> list[str]:
    folder = Path(CONF_DIR) / group
    return sorted(p.stem for p in folder.glob("*.yaml"))


def check_group_choices(overrides: list[str]) -> None:
    """`model=foo` where conf/model/foo.yaml does not exist: one line listing what does."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    for o in parsed:
        group = o.key_or_group
        if o.package or o.is_delete() or group.startswith("hydra") or not (Path(CONF_DIR) / group).is_dir():
            continue
        if o.is_sweep_override():
            values = [str(v) for v in o.sweep_string_iterator()] if o.is_discrete_sweep() else []
        else:
            values = [o.value()] if isinstance(o.value(), str) else []
        options = group_options(group)
        for value in values:
            if value not in options:
                fail(f"{group}={value} is not an option of '{group}'; available: {', '.join(options)}")


def compose_config(overrides: list[str]):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose(config_name="train", overrides=overrides)
    except Exception as e:  # Hydra/OmegaConf composition errors: keep the first line, it names the key
        fail(str(e).strip().splitlines()[0])
    finally:
        GlobalHydra.instance().clear()


def find_checkpoint(value: str, cfg) -> Path:
    """`last` -> newest last.ckpt of this experiment; a run directory -> its last.ckpt; else a file."""
    if value == "last":
        root = Path(cfg.paths.output_root) / cfg.name
        # exists(): a link whose target is gone (a run killed while relinking) is no checkpoint
        found = sorted((p for p in root.glob("*/checkpoints/last.ckpt") if p.exists()), key=lambda p: p.stat().st_mtime)
        if not found:
            raise CheckpointError(f"ckpt_path=last: no last.ckpt under {root}/*/checkpoints to resume")
        return found[-1]
    path = Path(value)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={value!r}: no such checkpoint file")
    return path


def resume_overrides(overrides: list[str], cfg) -> list[str]:
    """Resume in the original run directory with the original overrides (later ones win), so the
    checkpoint callback, TensorBoard curves and metrics continue where the run stopped."""
    value = next(o.split("=", 1)[1] for o in overrides if o.startswith("ckpt_path="))
    ckpt = find_checkpoint(value, cfg).absolute()  # not resolve(): last.ckpt may be a link into the run
    rest = [o for o in overrides if not o.startswith(("ckpt_path=", "hydra.run.dir="))]
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    earlier: list[str] = []
    if run_dir is not None and (run_dir / ".hydra" / "overrides.yaml").is_file():
        saved = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
        earlier = [o for o in saved if not o.startswith(("ckpt_path=", "hydra.run.dir="))]
        rest = [o for o in rest if o not in earlier]
    result = [*earlier, *rest, f"ckpt_path='{ckpt}'"]  # quoted: checkpoint names hold '=' (epoch=003-...)
    if run_dir is not None:
        result.append(f"hydra.run.dir='{run_dir}'")
    return result


def preflight(argv: list[str]) -> list[str]:
    """Return the argv Hydra should see (possibly with resume overrides); exit 2 on bad input."""
    from dlcourse.config import validate

    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return argv
    overrides = list(args.overrides)
    check_group_choices(overrides)
    if args.multirun or args.config_dir or args.config_path or args.config_name:
        return argv  # each sweep job is validated as it starts (a bad one is recorded as failed)
    cfg = compose_config(overrides)
    try:
        if any(o.startswith("ckpt_path=") for o in overrides) and cfg.ckpt_path is not None:
            new = resume_overrides(overrides, cfg)
            cfg = compose_config(new)
            read_checkpoint(cfg.ckpt_path)  # readable? checked before Hydra touches any run directory
            flags = [a for a in argv if a not in overrides]
            argv = [*flags, *new]
        validate(cfg)
    except DlcourseError as e:
        fail(str(e), e.exit_code)
    return argv
