"""Reading checkpoints safely (weights_only=True) with one-line errors a user can act on."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch

from dlcourse.errors import CheckpointError


def read_checkpoint(path: str | Path, need: tuple[str, ...] = ("state_dict",)) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is damaged
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint (corrupt or truncated file?)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        text = str(e)
        first = text.splitlines()[0] if text else type(e).__name__
        if "unsupported global" in text.lower():  # a pickled object (a class, a function): refused, never unpickled
            first = "it holds objects other than tensors and plain containers, which are not unpickled (weights_only=True)"
        elif "Weights only load failed" in first or "archive" in text or "PytorchStreamReader" in text:
            first = "it is corrupt or truncated"  # e.g. "Unsupported operand": damaged pickle bytes
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    missing = [k for k in need if not (isinstance(ckpt, dict) and k in ckpt)]
    if missing:
        raise CheckpointError(f"{path} is not a dlcourse checkpoint (no {', '.join(missing)})")
    return ckpt


def rng_state() -> dict:
    """The global RNG state (dropout masks, augmentation), saved so that a resumed run continues exactly
    where the unbroken run would be; batch order is seeded per epoch by the loader."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict | None) -> None:
    if state:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def resolve_checkpoint(value) -> Path:
    """A .ckpt file, or a run directory: its best checkpoint (from metrics.json), else last.ckpt."""
    path = Path(value)
    if path.is_dir():  # metrics.json is data: its best checkpoint counts only inside this run directory
        try:
            best = json.loads((path / "metrics.json").read_text()).get("best_checkpoint")
        except (OSError, ValueError, AttributeError):
            best = None
        named = Path(best) if isinstance(best, str) and best else Path("last.ckpt")
        # the file named (inside this run), this run's own copy of it (a copied run directory), last.ckpt
        candidates = [path / named, path / "checkpoints" / named.name]
        inside = [c for c in candidates if c.is_file() and c.resolve().is_relative_to(path.resolve())]
        path = inside[0] if inside else path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={str(value)!r}: no such checkpoint file")
    return path


def one_based(history: list[dict]) -> list[dict]:
    """A checkpoint's per-epoch history with epochs counted from 1 (checkpoints written before the histories
    counted from 1 start at epoch 0)."""
    history = [dict(h) for h in history]
    if history and min(int(h.get("epoch", 1)) for h in history) == 0:
        for h in history:
            h["epoch"] = int(h["epoch"]) + 1
    return history
