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
    check_unpacked_size(path)
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


# torch.save stores its records uncompressed: a checkpoint unpacks to about its own size. A zip whose
# directory claims much more is a decompression bomb (torch would allocate every claimed byte).
UNPACKED_RATIO, UNPACKED_SLACK, UNPACKED_CAP = 2, 64 * 2**20, 256 * 2**30


def check_unpacked_size(path: Path) -> None:
    """Refuse, from the zip directory alone and before any memory is used, a checkpoint that unpacks to
    more than twice its size (+64 MiB) or to more than 256 GiB."""
    try:
        with zipfile.ZipFile(path) as archive:
            claimed = sum(max(info.file_size, 0) for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: it is corrupt or truncated ({e})") from None
    limit = min(UNPACKED_RATIO * path.stat().st_size + UNPACKED_SLACK, UNPACKED_CAP)
    if claimed > limit:
        raise CheckpointError(f"cannot read checkpoint {path}: it would unpack to {claimed / 2**20:,.0f} MiB from "
                              f"{path.stat().st_size / 2**20:,.1f} MiB on disk (a decompression bomb?); refused "
                              f"before loading (limit {limit / 2**20:,.0f} MiB)")


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
    if path.is_dir():
        path = run_checkpoint(path)
    elif path.parent.name == "checkpoints" and not path.resolve().is_relative_to(path.parent.parent.resolve()):
        # a run's checkpoint that links into another run: evaluating it would report the other run's model here
        raise CheckpointError(f"{path} is a link out of its run directory (to {path.resolve()}); name that file itself")
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


def run_checkpoint(run: Path) -> Path:
    """The checkpoint metrics.json names as the best, found inside `run` only: metrics.json is data, and a
    copied or moved run directory evaluates its own file, not the original's. No best (a cross-validation
    without refit, a run still going): last.ckpt."""
    from dlcourse.trust import check_links

    check_links(run)  # checkpoints/ or last.ckpt linked into another run would be read and written there
    record_path = run / "metrics.json"
    try:
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {record_path}: {str(e).splitlines()[0]}; name the checkpoint file itself as "
                              "ckpt_path") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{record_path} is not a JSON object; this is not a run directory dlcourse wrote")
    best = record.get("best_checkpoint")
    if best is None:
        return run / "checkpoints" / "last.ckpt"
    named, original = Path(str(best)), record.get("run_dir")
    candidates = [] if named.is_absolute() else [run / named]
    if named.is_absolute() and isinstance(original, str) and named.is_relative_to(original):
        candidates.append(run / named.relative_to(original))  # e.g. refit/checkpoints/<best> of a copy
    candidates.append(run / "checkpoints" / named.name)
    inside = [c for c in candidates if c.is_file() and c.resolve().is_relative_to(run.resolve())]
    if not isinstance(best, str) or not best or not inside:
        raise CheckpointError(f"{record_path}: best_checkpoint={best!r} is no checkpoint file inside {run}; name the "
                              "checkpoint file itself as ckpt_path")
    return inside[0]
