"""Pixels at their real depth, as floats in [0, 1]: what image_folder reads from files and what the
predictor makes of images it is given.

- 8-bit modes (L, RGB, P, 1, CMYK, YCbCr, ...): PIL converts them to grey (L) or RGB, value / 255.
- 16-bit grey (I;16, I;16B, I;16L and I, as Pillow opens 16-bit PNGs and TIFFs): value / 65535, so a
  16-bit image and the same image as 8 bits give the same pixels (never clipped at 255).
- Floats (F): taken as they are when they lie in [0, 1], else / 255 when they lie in [0, 255] (PIL's own
  scale for F); other ranges are one line naming the file.
- Transparency (LA, RGBA, PA, a palette or colour marked transparent): composited over black, the
  background that augmentation also fills borders with.

Images are resized bilinearly: 8-bit ones as 8-bit images (as before), deeper ones as floats.
"""

from __future__ import annotations

import numpy as np
import torch

from dlcourse.errors import DataError

DEEP = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit grey: value / 65535
ALPHA = ("LA", "La", "RGBA", "RGBa", "PA")
GREY_MODES = ("1", "L", "LA", "La", "F", "P", *DEEP)  # P: palette images are checked for colour
LUMA = (0.299, 0.587, 0.114)  # PIL's RGB -> L weights


def _deep_grey(img, name: str) -> np.ndarray:
    """A 16-bit or float grey image as float32 in [0, 1] (its own size)."""
    a = np.asarray(img.convert("F"), dtype=np.float32)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if img.mode in DEEP:
        if lo < 0 or hi > 65535:
            raise DataError(f"image {name} (mode {img.mode}) has values from {lo:g} to {hi:g}: expected 16-bit "
                            f"values 0-65535")
        return a / np.float32(65535)
    if not np.isfinite(a).all() or lo < 0 or hi > 255:
        raise DataError(f"image {name} holds floats (mode F) from {lo:g} to {hi:g}: expected values in [0, 1] "
                        f"(or 0-255)")
    return a if hi <= 1 else a / np.float32(255)


def _flatten_alpha(img):
    """Transparent pixels composited over black; other images as they are."""
    from PIL import Image

    if img.mode not in ALPHA and "transparency" not in img.info:
        return img
    out = Image.new("RGBA", img.size, (0, 0, 0, 255))
    out.alpha_composite(img.convert("RGBA"))
    return out.convert("RGB")


def resize_float(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    """One float32 plane (H0, W0) resized bilinearly to (h, w) as a PIL float image."""
    from PIL import Image

    if plane.shape == (h, w):
        return plane
    return np.asarray(Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32)).resize((w, h), Image.BILINEAR))


def image_tensor(img, shape: tuple[int, int, int], name: str = "") -> torch.Tensor:
    """A PIL image as training reads it: grey (C=1) or RGB (C=3), resized bilinearly to (H, W), at its real
    depth; float32 (C, H, W) in [0, 1]."""
    from PIL import Image

    c, h, w = shape
    if img.mode in DEEP or img.mode == "F":
        plane = torch.from_numpy(resize_float(_deep_grey(img, name or "given"), h, w).copy()).clamp_(0, 1)
        return plane.expand(c, h, w).contiguous()
    arr = np.asarray(_flatten_alpha(img).convert("RGB" if c == 3 else "L").resize((w, h), Image.BILINEAR),
                     dtype=np.uint8)
    return torch.from_numpy(arr.copy()).reshape(h, w, c).permute(2, 0, 1).float().div_(255.0)


def float_as_trained(img: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """One float image (C0, H0, W0) in [0, 1] made (C, H, W) without rounding to 8 bits: RGB to grey with
    PIL's weights, grey to RGB by repeating, each channel resized bilinearly as a float image."""
    c, h, w = shape
    img = img.float()
    if img.shape[0] == 3 and c == 1:
        img = sum(k * ch for k, ch in zip(LUMA, img, strict=True))[None]
    planes = [resize_float(ch.numpy(), h, w) for ch in img[:1].expand(c, -1, -1)] if img.shape[0] == 1 else \
        [resize_float(ch.numpy(), h, w) for ch in img]
    return torch.from_numpy(np.stack(planes)).clamp_(0, 1)


def palette_is_grey(img) -> bool:
    rgb = np.asarray(img.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
