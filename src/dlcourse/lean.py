"""Import torchmetrics without the optional packages dlcourse never uses through it.

Lightning imports all of torchmetrics (`from torchmetrics import Metric`), and torchmetrics'
`__init__` imports every metric family it has: scipy.signal (audio metrics), torchvision with its
model zoo (image metrics such as ARNIQA, FID) and matplotlib.pyplot (`Metric.plot`). That is ~1.2 s
and ~80 MB of a 1-epoch run that uses none of them: dlcourse's metrics are accuracy, F1, AUROC, MSE
and the like. While torchmetrics' own `__init__` runs (and only then), those three packages look
absent to its availability checks, so it skips them; afterwards everything is as it was, and
dlcourse itself imports torchvision or matplotlib where it needs them (ResNet weights, figures).

Installed by the console scripts (`console_setup`) as an import hook, so it acts whichever module
happens to import Lightning or torchmetrics first; never by `import dlcourse`, which leaves other
libraries alone (a notebook's torchmetrics plots as usual). It does nothing if torchmetrics was
imported already. `DLCOURSE_FULL_IMPORTS=1` turns it off (torchmetrics' image, audio and plotting extras
then work as usual, e.g. in a callback of your own).
"""

from __future__ import annotations

import os
import sys

HIDDEN = ("torchvision", "scipy", "matplotlib")  # packages whose metrics or plots dlcourse never uses
ENV = "DLCOURSE_FULL_IMPORTS"


def _top(name: str) -> str:
    return name.replace(">", "=").replace("<", "=").split("=")[0].strip().split(".")[0]


class _Hidden:
    """Within the block, lightning_utilities' availability checks answer 'absent' for HIDDEN."""

    def __enter__(self):
        import lightning_utilities.core.imports as lui

        self.lui = lui
        self.bool, self.available = lui.RequirementCache.__bool__, lui.package_available
        real_bool, real_available = self.bool, self.available

        def requirement_bool(cache) -> bool:
            return False if _top(cache.module or cache.requirement or "") in HIDDEN else real_bool(cache)

        def package_available(name: str) -> bool:
            return False if _top(name) in HIDDEN else real_available(name)

        lui.RequirementCache.__bool__ = requirement_bool
        lui.package_available = package_available
        return self

    def __exit__(self, *exc) -> None:
        self.lui.RequirementCache.__bool__, self.lui.package_available = self.bool, self.available


class _Loader:
    """torchmetrics' own loader, run inside _Hidden."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with _Hidden():
            self.loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: the real loader's
        return getattr(self.loader, name)


class LeanTorchmetrics:
    """A meta-path finder that only wraps torchmetrics' loader, once, then steps aside."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "torchmetrics":
            return None
        cls.uninstall()
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec

    @classmethod
    def install(cls) -> None:
        if os.environ.get(ENV, "") not in ("", "0") or "torchmetrics" in sys.modules or cls in sys.meta_path:
            return
        sys.meta_path.insert(0, cls)

    @classmethod
    def uninstall(cls) -> None:
        if cls in sys.meta_path:
            sys.meta_path.remove(cls)


def console_setup() -> None:
    """What only the console scripts do to their own process, before torch is imported: torchmetrics
    without the extras dlcourse never uses (~1.2 s of each command), and figures without a display
    (a data module of the user's may draw with pyplot)."""
    LeanTorchmetrics.install()
    os.environ.setdefault("MPLBACKEND", "Agg")
