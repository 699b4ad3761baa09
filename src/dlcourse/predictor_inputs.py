"""What `Predictor.predict` (dlcourse.predictor) takes besides a DataFrame: arrays of raw features, pixels
or series windows, and image files; each made into model inputs as the model's data module made them in
training (its scaling, categories, normalisation statistics, image size and channels)."""

from __future__ import annotations

from pathlib import Path

import torch

from dlcourse.errors import DataError


def _tensor(x, what: str) -> torch.Tensor:
    """A numpy array or a tensor as a CPU tensor of its own dtype; one line if it holds no numbers."""
    import numpy as np

    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    a = np.asarray(x)
    try:
        return torch.from_numpy(a if a.flags.writeable else a.copy())
    except (TypeError, RuntimeError, ValueError):
        raise DataError(f"{what} must be numbers; got an array of {a.dtype}") from None


def table_array(p, x) -> torch.Tensor:
    """Raw features, (n, n_features) in training column order or one row (n_features,)."""
    import numpy as np
    import pandas as pd

    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    names, dm = p.feature_names, p._dm
    table = bool(names) and hasattr(dm, "inputs_from")
    n = len(names) if table else int(np.prod(p.input_shape))
    a = a[None] if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[1] != n:
        listed = f" ({', '.join(names)})" if names else ""
        got = f"got {a.shape[1]}" if a.ndim == 2 else f"got an array of shape {tuple(x.shape)}"
        raise DataError(f"expected {n} features{listed} per row, as an array (n, {n}) or ({n},); {got}")
    if table:  # through a DataFrame: encoded (categories) and scaled exactly as the same rows of a CSV
        return dm.inputs_from(pd.DataFrame(a, columns=names).infer_objects())
    return dm.preprocess(_tensor(a, "the features").float())


def image_array(p, x) -> torch.Tensor:
    """Pixels (N, C, H, W), (N, H, W), (C, H, W) or (H, W); uint8 0-255, uint16 0-65535 (16-bit images) or
    float in [0, 1]. A 3-D array is one image when its first size is the model's channel count, else N grey
    images."""
    import numpy as np

    c, h, w = p.input_shape
    if getattr(x, "dtype", None) in (np.uint16, torch.uint16):  # 16-bit pixels: scaled as 16-bit files are
        x = (x.to(torch.float32) if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)) / 65535
    t = _tensor(x, "the pixels")
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[None] if t.shape[0] == c else t[:, None]
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        raise DataError(f"expected images as an array (N, C, H, W), (N, H, W), (C, H, W) or (H, W) with C = 1 or 3 "
                        f"(the model takes {c}x{h}x{w}); got shape {tuple(x.shape)}")
    top = 1 if t.is_floating_point() else 255
    if len(t) and not (bool(torch.isfinite(t.double()).all()) and t.min() >= 0 and t.max() <= top):
        raise DataError(f"pixels must be uint8 0-255, uint16 0-65535 or floats in [0, 1]; these ({t.dtype}) go from "
                        f"{float(t.min()):g} to {float(t.max()):g}")
    if not t.is_floating_point():
        t = t.to(torch.uint8)
    if tuple(t.shape[1:]) != (c, h, w):  # converted and resized as training read its files
        t = torch.stack([_as_trained(img, (c, h, w)) for img in t]) if len(t) else torch.zeros(0, c, h, w)
    return p._dm.preprocess(t)


def _as_trained(img: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """One image (C, H, W) as training read its files: 8-bit pixels through PIL, floats at their own depth."""
    import numpy as np
    from PIL import Image

    from dlcourse.data.pixels import float_as_trained, image_tensor

    if img.is_floating_point():
        return float_as_trained(img, shape)
    arr = np.ascontiguousarray(img.permute(1, 2, 0).numpy())
    return image_tensor(Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr), shape)


def image_files_of(p, x) -> tuple[list[Path], torch.Tensor]:
    """An image file, a folder (its images, recursively, sorted) or a list of them: the files and their
    model inputs."""
    from dlcourse.data.image_folder import EXTENSIONS, image_files, read_image

    kinds = ", ".join(sorted(EXTENSIONS))
    files = []
    for item in (Path(i).expanduser() for i in ([x] if isinstance(x, str | Path) else x)):
        if item.is_dir():
            found = image_files(item)
            if not found:
                raise DataError(f"no images ({kinds}) in the folder {item}")
            files += found
        elif not item.exists():
            raise DataError(f"{item}: no such image file or folder")
        elif item.suffix.lower() not in EXTENSIONS:
            raise DataError(f"{item} is not an image file: expected {kinds}, a folder of them, or a .csv")
        else:
            files.append(item)
    pixels = torch.stack([read_image(f, tuple(p.input_shape)) for f in files])
    return files, p._dm.preprocess(pixels)


def series_array(p, x) -> torch.Tensor:
    """Windows (N, n_steps), (N, n_steps, 1) or one window (n_steps,), in the series' own units."""
    n_steps, rest = p.input_shape[0], tuple(p.input_shape[1:])
    t = _tensor(x, "the windows").float()
    t = t[None] if t.ndim == 1 else t
    t = t[..., None] if t.ndim == 2 and rest == (1,) else t
    if tuple(t.shape[1:]) != tuple(p.input_shape):
        raise DataError(f"expected windows of {n_steps} steps as an array (N, {n_steps}), (N, {n_steps}, 1) or "
                        f"({n_steps},); got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"window {int((~torch.isfinite(t)).flatten(1).any(1).nonzero()[0][0])} (0-based) has a missing "
                        f"or non-finite value; fill or drop it")
    return p._dm.preprocess(t)


def series_frame(p, df, columns: list[str]):
    """A series as the training CSV had it (rows in time order, the trained columns): the rows with
    `forecast_1` ... `forecast_<horizon>` added, the forecast made after the window that ends at that row
    (`<column>_forecast_<k>` for several columns); the first n_steps - 1 rows have no full window (empty).
    The last row's forecast is the one into the future."""
    import numpy as np

    n_steps = p.input_shape[0]
    if len(df) < n_steps:
        raise DataError(f"the series has {len(df)} rows: fewer than one window of n_steps={n_steps}")
    result = df.copy()
    for col in columns:
        values = df[col].to_numpy(dtype="float64")
        if not np.isfinite(values).all():
            raise DataError(f"column {col!r} has a missing or non-finite value (first at row "
                            f"{int((~np.isfinite(values)).nonzero()[0][0]) + 2}); fill or drop it")
        windows = np.lib.stride_tricks.sliding_window_view(values, n_steps).astype("float32")
        out = p._outputs(series_array(p, windows))
        forecast = np.stack([np.asarray(v, dtype="float64") for v in out.values()], 1)
        horizon = int(p.config["data"].get("horizon") or 1)
        forecast = forecast[:, -horizon:]  # seq2seq: after every step; the forecast after the window is the last
        for k in range(horizon):
            name = f"forecast_{k + 1}" if len(columns) == 1 else f"{col}_forecast_{k + 1}"
            result[name] = np.concatenate([np.full(n_steps - 1, np.nan), forecast[:, k]])
    return result


def expected(p) -> str:
    """What predict takes for this model, for an error message."""
    shape = "x".join(map(str, p.input_shape))
    if p.inputs == "image":
        return (f"an image file, a folder or list of image files, a .csv, or pixels (N, C, H, W), (N, H, W), (C, H, W) "
                f"or (H, W) as a numpy array or tensor (the model takes {shape})")
    if p.inputs == "sequence":
        n = p.input_shape[0]
        return f"windows as a numpy array or tensor (N, {n}), (N, {n}, 1) or ({n},), or a DataFrame or .csv"
    names = p.feature_names or []
    n = len(names) or int(torch.Size(p.input_shape).numel())
    return (f"a DataFrame or .csv with the columns {', '.join(names)}, or a numpy array or tensor (n, {n}) of raw "
            f"features" if names else f"a DataFrame or .csv, or a numpy array or tensor (n, {n}) of raw features")
