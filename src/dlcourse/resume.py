"""Resuming a run: `ckpt_path` as a checkpoint file, a run directory or `last`, and the overrides
that continue the run in its own directory with its own settings (later ones win)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from dlcourse.errors import CheckpointError


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
    ckpt = find_checkpoint(str(cfg.ckpt_path), cfg).absolute()  # not resolve(): last.ckpt may be a link into the run
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

