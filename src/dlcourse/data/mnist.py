"""MNIST and Fashion-MNIST: 60,000 training and 10,000 test images of 28x28 grey pixels, 10 classes.

The files are torchvision's: `<root>/MNIST/raw/*-ubyte.gz` (or `<root>/FashionMNIST/raw/`).
`data.root` may be read-only and hold only the four `.gz` files: they are read directly (gzip
in memory), nothing is written there. `data.download=true` uses torchvision's own download
(needs internet and a writable root). The 60k training images are split into train and
validation (`n_val`, seeded); the 10k test images are used for the test only.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import torch

from dlcourse.config.types import PositiveInt
from dlcourse.data.images import ImageDataModule
from dlcourse.errors import DataError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_TYPES = {0x08: torch.uint8}  # type code -> element type (MNIST uses unsigned bytes only)


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (the MNIST format), plain or gzipped, as a uint8 tensor. The values are read straight
    into the tensor: no second copy of the file in memory."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_TYPES:
                raise DataError(f"{path} is not an IDX file of unsigned bytes (the MNIST format)")
            sizes = f.read(4 * head[3])
            dims = [int.from_bytes(sizes[4 * i: 4 * i + 4], "big") for i in range(len(sizes) // 4)]
            if len(dims) != head[3]:
                raise DataError(f"{path} is truncated or corrupt: its header is cut short")
            out = torch.empty(dims, dtype=IDX_TYPES[head[2]])
            view = memoryview(out.numpy()).cast("B")
            got = 0
            while got < len(view) and (n := f.readinto(view[got:])):
                got += n
            extra = len(f.read(1))
    except (OSError, EOFError, RuntimeError) as e:  # RuntimeError: a header asking for more memory than there is
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read {path}: {reason}") from None
    if got != len(view) or extra:
        size = "more than that" if extra else f"{got} values"
        raise DataError(f"{path} is truncated or corrupt: header says {dims}, file has {size}")
    return out


class MNISTDataModule(ImageDataModule):
    """Hand-written digits. Options as in conf/data/mnist.yaml."""

    dataset = "MNIST"  # torchvision's class name and folder name
    default_class_names = [str(i) for i in range(10)]

    def __init__(self, root: str = "data", download: bool = False, n_val: PositiveInt = 16000, **kwargs):
        super().__init__(**kwargs)
        self.root, self.download, self.n_val = Path(root).expanduser(), download, n_val
        self.class_names = list(self.default_class_names)

    # -- files --------------------------------------------------------------------------
    def raw_dir(self) -> Path:
        return self.root / self.dataset / "raw"

    def find(self, stem: str) -> Path | None:
        for name in (stem, stem + ".gz"):
            path = self.raw_dir() / name
            if path.is_file():
                return path
        return None

    def missing_message(self) -> str:
        return (f"{self.dataset} not found: looked for {self.raw_dir()}/train-images-idx3-ubyte.gz "
                f"(and the other three *-ubyte.gz files). Point data.root at a folder with "
                f"{self.dataset}/raw/ in it (e.g. data.root=/path/to/datasets), or set "
                f"data.download=true to download them there (needs internet)")

    def load_raw(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        stems = [s for pair in FILES.values() for s in pair]
        if any(self.find(s) is None for s in stems):
            if not self.download:
                raise DataError(self.missing_message())
            return self.download_with_torchvision()
        return {split: (read_idx(self.find(img)), read_idx(self.find(lab))) for split, (img, lab) in FILES.items()}

    def download_with_torchvision(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.dataset)
        out = {}
        try:
            for split in ("train", "test"):
                ds = cls(str(self.root), train=split == "train", download=True)
                out[split] = (ds.data, ds.targets)
        except Exception as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(f"{self.dataset} download into {self.raw_dir()} failed ({reason}). "
                            f"Copy the four *-ubyte.gz files there by hand, or point data.root at a "
                            f"folder that has {self.dataset}/raw/") from None
        return out

    # -- splits -------------------------------------------------------------------------
    def build(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        raw = self.load_raw()
        x_all, y_all = raw["train"]
        x_test, y_test = raw["test"]
        n = len(x_all)
        if not 1 <= self.n_val < n:
            raise DataError(f"data.n_val={self.n_val} must be between 1 and {n - 1} "
                            f"({n} training images to split into train and validation)")
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(n, generator=g)
        val_idx, train_idx = order[: self.n_val], order[self.n_val:]

        def as_float(x: torch.Tensor) -> torch.Tensor:  # uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1]
            return x.unsqueeze(1).float().div_(255.0)

        # Each split is converted and normalised in place, one at a time: the only float copies alive
        # are the ones that are kept, which sets the peak memory of a small run.
        x_train = as_float(x_all[train_idx])
        self.fit_normalization(x_train)  # statistics of the training split only
        norm = self.normalize_
        return {
            "train": (norm(x_train), y_all[train_idx].long()),
            "val": (norm(as_float(x_all[val_idx])), y_all[val_idx].long()),
            "test": (norm(as_float(x_test)), y_test.long()),
        }


class FashionMNISTDataModule(MNISTDataModule):
    """Zalando's Fashion-MNIST: same format and sizes, 10 kinds of clothing."""

    dataset = "FashionMNIST"
    default_class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
