"""Your own pictures, one folder per class, for training from scratch or transfer learning:

    root/cat/001.jpg, root/cat/002.png, ..., root/dog/...        split by val_fraction/test_fraction
    root/train/cat/..., root/val/cat/..., root/test/cat/...      separate folders (val/test optional:
                                                                  missing ones are split off train)

Every image is read once with PIL at its real depth (16-bit grey as 16 bits, see data/pixels.py), converted
to RGB (channels: 3) or grey (channels: 1), scaled to [0, 1], resized to
image_size x image_size and kept in memory as one float tensor per split, normalised with the
training split's per-channel statistics. Augmentation (random affine, flips) runs on the device.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import torch

from dlcourse.config.types import Fraction, Interval
from dlcourse.data.images import ImageDataModule
from dlcourse.data.pixels import GREY_MODES, image_tensor, palette_is_grey
from dlcourse.errors import DataError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


@contextmanager
def open_image(path: Path):
    """The image file opened (its header read, nothing decoded). One larger than PIL's pixel limit
    (Image.MAX_IMAGE_PIXELS, about 89 million) is refused from its header in one line naming the
    file, before any memory is used: a small file can decode to gigabytes (a decompression bomb)."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL only warns up to twice its limit
        try:
            img = Image.open(path)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
            raise DataError(f"image {path} is too large to read: {str(e).split(', could')[0]} (PIL.Image."
                            "MAX_IMAGE_PIXELS; a decompression bomb?)") from None
        except (OSError, UnidentifiedImageError) as e:
            raise DataError(f"cannot read image {path}: {e}") from None
    with img:
        yield img


def read_image(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """One image file as pixels.image_tensor() (float32 C x H x W in [0, 1], at the file's real depth); one
    line naming the file if it cannot be read."""
    with open_image(path) as img:
        try:
            return image_tensor(img, shape, str(path))
        except OSError as e:  # a header that reads, data that does not (a truncated file)
            raise DataError(f"cannot read image {path}: {e}") from None
        except ValueError as e:  # a mode PIL cannot convert to grey or RGB (e.g. LAB)
            raise DataError(f"cannot read image {path}: {e}; save it as grey, RGB or 16-bit grey") from None


MAX_AUTO_SIZE = 64  # image_size: null takes the images' own size, up to this (memory: all images are kept)


class ImageFolderDataModule(ImageDataModule):
    def __init__(self, root: str = "images", image_size: Annotated[int, Interval(ge=8)] | None = None,
                 channels: Literal[1, 3] | None = None, val_fraction: Fraction = 0.2, test_fraction: Fraction = 0.2,
                 **kwargs):
        super().__init__(**kwargs)
        self.root, self.image_size, self.channels = Path(root).expanduser(), image_size, channels
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    def look_at_images(self, files: list[Path]) -> None:
        """channels / image_size left null: grey if every image is grey, else RGB; the most common side
        length of the images (the larger of width and height), at most MAX_AUTO_SIZE."""
        from collections import Counter

        sides, grey = Counter(), True
        for path in files[:2000]:  # enough to know the folder
            try:
                with open_image(path) as img:
                    sides[max(img.size)] += 1
                    grey = grey and (img.mode in GREY_MODES and (img.mode != "P" or palette_is_grey(img)))
            except OSError:
                continue  # reported when the image is read
        if self.channels is None:
            self.channels = 1 if grey else 3
        if self.image_size is None:
            self.image_size = max(8, min(MAX_AUTO_SIZE, sides.most_common(1)[0][0] if sides else MAX_AUTO_SIZE))

    def load_folder(self, folder: Path, class_names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image of the class folders as one float tensor in [0, 1] (filled in place: no second copy)."""
        files = [(label, path) for label, name in enumerate(class_names) if (folder / name).is_dir()
                 for path in image_files(folder / name)]
        shape = (self.channels, self.image_size, self.image_size)
        x = torch.empty(len(files), *shape)
        for i, (_, path) in enumerate(files):
            x[i] = read_image(path, shape)
        return x, torch.tensor([label for label, _ in files], dtype=torch.long)

    def split_off(self, x, y, fraction: float, g: torch.Generator):
        """Stratified: `fraction` of every class goes to the second part."""
        take = []
        for c in y.unique():
            idx = (y == c).nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            take.append(idx[: max(1, round(fraction * len(idx)))] if len(idx) > 1 else idx[:0])
        take = torch.cat(take) if take else torch.zeros(0, dtype=torch.long)
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[take] = False
        return (x[keep], y[keep]), (x[take], y[take])

    def build(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        if not self.root.is_dir():
            raise DataError(f"image folder {self.root} not found: set data.root to a folder with one "
                            f"sub-folder of images per class (or train/, val/, test/ sub-folders)")
        split_dirs = {s: next((self.root / n for n in names if (self.root / n).is_dir()), None)
                      for s, names in SPLIT_DIRS.items()}
        train_dir = split_dirs["train"] or self.root
        self.class_names = [p.name for p in class_folders(train_dir)]
        if len(self.class_names) < 2:
            raise DataError(f"{train_dir} needs at least two class folders with images, found "
                            f"{self.class_names or 'none'}")
        g = torch.Generator().manual_seed(self.seed)
        if self.channels is None or self.image_size is None:
            self.look_at_images([f for d in split_dirs.values() if d for f in image_files(d)] or image_files(train_dir))
        empty = [n for n in self.class_names if not image_files(train_dir / n)]
        if empty:
            also = f" (also empty: {', '.join(empty[1:])})" if empty[1:] else ""
            raise DataError(f"class folder {train_dir / empty[0]} has no images ({', '.join(sorted(EXTENSIONS))}){also}: "
                            f"add images or remove the folder")
        train = self.load_folder(train_dir, self.class_names)
        splits = {}
        for split, fraction in (("test", self.test_fraction), ("val", self.val_fraction)):
            if split_dirs[split] is not None:
                splits[split] = self.load_folder(split_dirs[split], self.class_names)
            else:
                train, splits[split] = self.split_off(*train, fraction, g)
            if len(splits[split][1]) == 0:
                raise DataError(f"the {split} split is empty: add images (at least 2 per class) or a {split}/ folder")
        self.fit_normalization(train[0])
        return {s: (self.normalize_(x), y) for s, (x, y) in {"train": train, **splits}.items()}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "channels": self.channels, "image_size": self.image_size}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.channels = state.get("channels", self.channels)
        self.image_size = state.get("image_size", self.image_size)
