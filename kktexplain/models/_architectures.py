"""Reference architectures: an MLP, the distillation literature's ConvNet, a small ResNet.

Each model records ``input_shape`` and ``num_classes`` so that the explainer can infer them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLP", "ConvNet", "ResNet"]


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
    return shape


class MLP(nn.Sequential):
    """Multi-layer perceptron on flattened inputs.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 28, 28)`` or ``(2,)``.
    num_classes : int
    hidden : sequence of int, default=(256, 256)
    bias : bool, default=True

    Shapes
    ------
    ``(N, *input_shape) -> (N, num_classes)``
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (256, 256),
        bias: bool = True,
    ) -> None:
        shape = _check_shape(input_shape)
        sizes = [int(torch.tensor(shape).prod()), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b, bias=bias), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes, bias=bias))
        super().__init__(*layers)
        self.input_shape = shape
        self.num_classes = num_classes


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'instancenorm', 'batchnorm', 'groupnorm' or 'none', got {kind!r}")


class ConvNet(nn.Module):
    """ConvNet-D of the dataset-distillation literature (DC, DSA, DM, MTT).

    ``depth`` blocks of conv 3x3 (``width`` channels) -> norm -> ReLU -> 2x2 pooling, then one
    linear classifier.

    Parameters
    ----------
    input_shape : tuple of int, default=(1, 28, 28)
        ``(C, H, W)``.
    num_classes : int, default=10
    width : int, default=128
    depth : int, default=3
    norm : {"instancenorm", "batchnorm", "groupnorm", "none"}, default="instancenorm"
        ``"instancenorm"`` is a GroupNorm with one group per channel, as in DC.
    pooling : {"avg", "max"}, default="avg"

    Shapes
    ------
    ``(N, C, H, W) -> (N, num_classes)``
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        width: int = 128,
        depth: int = 3,
        norm: str = "instancenorm",
        pooling: str = "avg",
    ) -> None:
        super().__init__()
        shape = _check_shape(input_shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W) for a ConvNet, got {input_shape!r}")
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        channels, h, w = shape
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [
                nn.Conv2d(channels, width, 3, padding=1),
                _norm(norm, width),
                nn.ReLU(),
                nn.AvgPool2d(2) if pooling == "avg" else nn.MaxPool2d(2),
            ]
            channels, h, w = width, h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * h * w, num_classes)
        self.input_shape = shape
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape ``(N, num_classes)``."""
        return self.classifier(self.features(x).flatten(1))


class ResNet(nn.Module):
    """A small ResNet with BatchNorm for small images (torchvision's ``BasicBlock``).

    Parameters
    ----------
    input_shape : tuple of int, default=(1, 28, 28)
    num_classes : int, default=10
    widths : sequence of int, default=(16, 32, 64)
        Channels of the stages; every stage after the first halves the resolution.
    blocks : int, default=1
        Basic blocks per stage.

    Shapes
    ------
    ``(N, C, H, W) -> (N, num_classes)``
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32, 64),
        blocks: int = 1,
    ) -> None:
        # imported here: torchvision's models take ~2 s to import, which every command line paid
        from torchvision.models.resnet import BasicBlock

        super().__init__()
        shape = _check_shape(input_shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W) for a ResNet, got {input_shape!r}")
        self.stem = nn.Sequential(
            nn.Conv2d(shape[0], widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        stages: list[nn.Module] = []
        cin = widths[0]
        for i, cout in enumerate(widths):
            stride = 1 if i == 0 else 2
            for b in range(blocks):
                down = None
                if b == 0 and (stride != 1 or cin != cout):
                    down = nn.Sequential(
                        nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                    )
                stages.append(BasicBlock(cin, cout, stride if b == 0 else 1, downsample=down))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self.input_shape = shape
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape ``(N, num_classes)``."""
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))
