"""Resuming a run: `ckpt_path` as a checkpoint file, a run directory or `last`, and the overrides
that continue the run in its own directory with its own settings (later ones win)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from dlcourse.errors import CheckpointError
from dlcourse.trust import check_links, check_saved_overrides


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
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    # A checkpoint outside a run directory resumes where the command says (hydra.run.dir), or in a new one.
    rest = [o for o in overrides if not o.startswith(("ckpt_path=", "hydra.run.dir=" if run_dir else "ckpt_path="))]
    earlier: list[str] = []
    if run_dir is not None:
        check_links(run_dir)
    if run_dir is not None and (run_dir / ".hydra" / "overrides.yaml").is_file():
        # data.download is not taken from a run dir (it may be someone else's, naming where to fetch to):
        # data already there needs none, and `data.download=true` on the resume command asks for it.
        earlier = [o for o in saved_overrides(run_dir)
                   if not o.startswith(("ckpt_path=", "hydra.run.dir=", "data.download=", "+data.download="))]
        rest = [o for o in rest if o not in earlier]
    result = [*earlier, *rest, f"ckpt_path='{ckpt}'"]  # quoted: checkpoint names hold '=' (epoch=003-...)
    if run_dir is not None:
        result.append(f"hydra.run.dir='{run_dir}'")
    return result


def saved_overrides(run_dir: Path) -> list[str]:
    """A run directory's .hydra/overrides.yaml: data, checked against what dlcourse writes (dlcourse.trust)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        saved = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as e:
        raise CheckpointError(f"cannot read {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(saved, list) or not all(isinstance(o, str) for o in saved):
        raise CheckpointError(f"{path} is not a list of overrides; this is not a run directory dlcourse wrote")
    check_saved_overrides(saved, path)
    return saved
