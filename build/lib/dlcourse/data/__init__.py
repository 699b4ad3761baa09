"""Data modules. Each one builds its splits as in-memory tensors (see `base.InMemoryDataModule`)."""
