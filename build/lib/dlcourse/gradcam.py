"""Grad-CAM (Selvaraju et al. 2017), pure torch: which pixels drove a CNN's decision.

The heat map of class c is ReLU(sum_k w_k A_k), where A_k are the maps of a convolutional layer
and w_k the spatial mean of d(logit_c)/dA_k. It is upsampled to the input's size and scaled to
[0, 1] per image. The layer, unless one is named, is the model's last Conv2d whose maps are at
least `min_size` pixels wide: on small inputs a ResNet's last maps are 1x1, which explain nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def last_conv_layer(model: nn.Module) -> nn.Module | None:
    """The last nn.Conv2d in the model's module order (for ResNet: the last conv of layer4)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def first_conv_layer(model: nn.Module) -> nn.Conv2d | None:
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def gradcam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None,
            layer: nn.Module | None = None, min_size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Heat maps (N, H, W) in [0, 1] for inputs x (N, C, H, W), and the classes they explain.

    target: the class per image to explain (default: the predicted class)."""
    layers = [layer] if layer is not None else [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not layers:
        raise ValueError("Grad-CAM needs a model with a convolutional layer")
    device = next(model.parameters()).device
    acts: dict[int, torch.Tensor] = {}
    grads: dict[int, torch.Tensor] = {}

    def make_hook(i: int):
        def hook(_module, _inputs, output):
            acts[i] = output
            output.register_hook(lambda g: grads.__setitem__(i, g))
        return hook

    was_training = model.training
    handles = [m.register_forward_hook(make_hook(i)) for i, m in enumerate(layers)]
    try:
        # Figures are drawn after the test, which may run under inference mode: leave it.
        with torch.inference_mode(False), torch.enable_grad():
            model.eval()
            inp = x.detach().clone().to(device).requires_grad_(True)  # so frozen backbones still carry grads
            out = model(inp)
            if out.ndim == 1 or out.shape[-1] == 1:  # binary: one logit, explain the positive class
                cls = torch.zeros(len(inp), dtype=torch.long, device=device)
                score = out.reshape(len(inp))
            else:
                cls = out.argmax(-1) if target is None else target.to(device).long()
                score = out.gather(1, cls.view(-1, 1)).squeeze(1)
            model.zero_grad(set_to_none=True)
            score.sum().backward()
            used = [i for i in acts if i in grads]
            wide = [i for i in used if min(acts[i].shape[-2:]) >= min_size]
            pick = wide[-1] if wide else max(used, key=lambda i: min(acts[i].shape[-2:]))
            act, grad = acts[pick].detach(), grads[pick].detach()
            weights = grad.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * act).sum(1, keepdim=True))
            cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False).squeeze(1)
            flat = cam.flatten(1)
            lo, hi = flat.min(1).values.view(-1, 1, 1), flat.max(1).values.view(-1, 1, 1)
            cam = (cam - lo) / (hi - lo).clamp_min(1e-12)
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return cam.float().cpu(), cls.cpu()
