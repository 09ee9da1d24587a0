"""A ResNet-family CNN (He et al., 2015, https://arxiv.org/abs/1512.03385), written here so
no torchvision is needed. Basic blocks; ``resnet18``/``resnet34`` have the paper's stage
depths; ``resnet10`` and ``resnet8`` are small variants for small data and CPUs. Images
of 64 pixels or less get a CIFAR-style stem (3x3 conv, no pooling), larger ones the
ImageNet stem (7x7 stride 2 and max-pooling)."""

from __future__ import annotations

from torch import nn

DEPTHS = {"resnet8": (1, 1, 1), "resnet10": (1, 1, 1, 1), "resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, arch: str = "resnet18", num_classes: int = 1000, in_channels: int = 3, width: int = 64,
                 image_size: int = 224):
        super().__init__()
        if arch not in DEPTHS:
            raise ValueError(f"unknown arch {arch!r}; known: {', '.join(DEPTHS)}")
        if image_size <= 64:
            stem = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        else:
            stem = [nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                    nn.MaxPool2d(3, 2, 1)]
        self.stem = nn.Sequential(*stem)
        layers, cin = [], width
        for i, blocks in enumerate(DEPTHS[arch]):
            cout = width * 2 ** i
            for b in range(blocks):
                layers.append(BasicBlock(cin, cout, 2 if (b == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))
