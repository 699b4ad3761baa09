"""torchvision's ResNet-18/34/50 with a new head for the task's classes.

Inputs are made to fit inside the model, on the device: one-channel images are repeated to three
channels, and `image_size` resizes them (bilinear), so MNIST goes in as it is. Weights:
  weights: none       random initialisation (training from scratch)
  weights: imagenet   torchvision's ImageNet weights (downloaded once into the torch hub cache)
  weights_path: FILE  a local state dict (e.g. the downloaded resnet18-f37072fd.pth); wins over `weights`
The old 1000-class head is always replaced. `freeze_backbone: true` trains only the new head
(batchnorm statistics stay frozen too); otherwise everything is fine-tuned, the backbone with its
own learning rate `backbone_lr` if given (e.g. 10x lower than the optimizer's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from dlcourse.config.types import Interval, Positive
from dlcourse.errors import ConfigError

ARCHS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights", "resnet50": "ResNet50_Weights"}


def imagenet_weights(arch: str):
    return getattr(torchvision.models, ARCHS[arch]).IMAGENET1K_V1


def hub_cache_file(arch: str) -> Path:
    """Where torchvision keeps (and looks for) the downloaded ImageNet weights."""
    url = imagenet_weights(arch).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def load_imagenet_state(arch: str) -> dict:
    weights = imagenet_weights(arch)
    cached = hub_cache_file(arch)
    try:
        # torchvision's own loading path: uses the hub cache when the file is there, downloads otherwise.
        return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            "model.weights", "imagenet",
            f"the ImageNet weights of {arch} are not cached at {cached} and could not be downloaded "
            f"({reason}). Download {weights.url} on a machine with internet and copy it to {cached}, "
            f"or pass model.weights_path=/path/to/{cached.name}; or train from scratch with model.weights=none",
        ) from None


def load_local_state(path: str) -> dict:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError("model.weights_path", path, "no such file")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError("model.weights_path", path, f"cannot be read as a state dict ({str(e).splitlines()[0]})") from None
    for key in ("state_dict", "model"):  # a checkpoint wrapping the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError("model.weights_path", path, "does not hold a state dict")
    # A dlcourse/Lightning checkpoint of this model prefixes keys with model.net.
    for prefix in ("model.net.", "net.", "module."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class ResNet(nn.Module):
    accepts = ("image",)

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        arch: Literal["resnet18", "resnet34", "resnet50"] = "resnet18",
        weights: Literal["none", "imagenet"] = "none",
        weights_path: str | None = None,
        freeze_backbone: bool = False,
        backbone_lr: Positive | None = None,  # null: the optimizer's lr
        image_size: Annotated[int, Interval(ge=16)] | None = None,  # null: keep the input size
    ):
        super().__init__()
        self.in_channels = input_shape[0] if len(input_shape) == 3 else 1
        if self.in_channels not in (1, 3):
            raise ConfigError("model.arch", arch, f"needs 1- or 3-channel images, the data has {self.in_channels}")
        self.image_size, self.freeze_backbone, self.backbone_lr = image_size, freeze_backbone, backbone_lr
        self.net = getattr(torchvision.models, arch)(weights=None)
        state = None
        if weights_path:
            state = load_local_state(weights_path)
        elif weights == "imagenet":
            state = load_imagenet_state(arch)
        if state is not None:
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # the old head goes
            missing, unexpected = self.net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
                raise ConfigError("model.weights_path" if weights_path else "model.weights", weights_path or weights,
                                  f"does not fit {arch} ({detail})")
        self.net.fc = nn.Linear(self.net.fc.in_features, num_outputs)  # the new head
        if freeze_backbone:
            for name, p in self.net.named_parameters():
                p.requires_grad = name.startswith("fc.")

    def backbone_parameters(self):
        return [p for n, p in self.net.named_parameters() if not n.startswith("fc.")]

    def param_groups(self) -> list[dict]:
        """The optimizer's groups: the new head, and the backbone (own lr if backbone_lr is set)."""
        head = list(self.net.fc.parameters())
        if self.freeze_backbone:
            return [{"params": head}]
        backbone = {"params": self.backbone_parameters()}
        if self.backbone_lr is not None:
            backbone["lr"] = float(self.backbone_lr)
        return [{"params": head}, backbone]

    def _freeze_batchnorm(self) -> None:
        # Frozen means frozen: batchnorm statistics too. Done on every training forward, since
        # trainers may set each module's mode directly rather than through train().
        for m in self.net.modules():
            if isinstance(m, BATCH_NORMS) and m.training:
                m.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.freeze_backbone and self.training:
            self._freeze_batchnorm()
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return self.net(x)
