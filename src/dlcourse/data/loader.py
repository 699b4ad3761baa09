"""A DataLoader replacement for data that fits in memory.

The whole split lives as tensors on the training device; an epoch is a random
permutation of indices cut into batches, so there are no worker processes, no
per-sample Python and no host-to-device copies. Under DDP every rank takes its
own shard of the permutation (padded to equal length for training, exactly as
torch's DistributedSampler does, so every rank runs the same number of steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch


class TensorLoader:
    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        epoch_fn: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
        pad_to_equal: bool = False,
        transform: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]] | None = None,
        group: int = 1,
    ):
        self.tensors = tuple(tensors)
        self.n = len(self.tensors[0])
        if any(len(t) != self.n for t in self.tensors):
            raise ValueError("all tensors of a split must have the same length")
        self.batch_size = max(1, int(batch_size))
        self.shuffle, self.seed, self.epoch_fn = shuffle, seed, epoch_fn
        self.rank, self.world_size, self.pad = rank, world_size, pad_to_equal
        self.transform = transform
        # group > 1: yield lists of `group` batches; the training loop (dlcourse.loop) decides how many and
        # runs one optimizer step per batch.
        self.group = max(1, int(group))

    def _shard_size(self) -> int:
        if self.world_size == 1:
            return self.n
        if self.pad:
            return math.ceil(self.n / self.world_size)
        return len(range(self.rank, self.n, self.world_size))

    @property
    def num_batches(self) -> int:
        return math.ceil(self._shard_size() / self.batch_size)

    def __len__(self) -> int:
        return math.ceil(self.num_batches / self.group)

    def _indices(self) -> torch.Tensor | None:
        """This rank's sample order for the current epoch, or None for 'all, in order'."""
        if not self.shuffle and self.world_size == 1:
            return None
        device = self.tensors[0].device
        if self.shuffle:
            # Seeded by (seed, epoch), not by a global RNG: identical on every rank and
            # after a resume, so a resumed run sees exactly the batches it would have seen.
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch_fn())
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        if self.world_size > 1:
            if self.pad:
                total = self._shard_size() * self.world_size
                order = torch.cat([order, order[: total - self.n]])
            order = order[self.rank :: self.world_size]
        return order.to(device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self._indices()
        bs = self.batch_size
        if order is None and bs >= self.n:
            batches = [self.tensors]  # full batch: hand over the tensors themselves, no copy
        elif order is None:
            batches = (tuple(t[i : i + bs] for t in self.tensors) for i in range(0, self.n, bs))
        else:
            batches = (tuple(t[order[i : i + bs]] for t in self.tensors) for i in range(0, len(order), bs))
        batches = (self.transform(b) if self.transform is not None else tuple(b) for b in batches)
        if self.group == 1:
            yield from batches
            return
        chunk = []
        for batch in batches:
            chunk.append(batch)
            if len(chunk) == self.group:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
