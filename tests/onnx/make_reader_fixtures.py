#!/usr/bin/python3
"""Writes the small PyTorch exports that tests/core/test_onnx_reader.c reads.

Run by hand from the project root with Debian's python3-torch and python3-onnx:
    /usr/bin/python3 tests/onnx/make_reader_fixtures.py
It writes tests/data/onnx/*.onnx (a few KB each, committed). Each export has a dynamic
batch axis, so PyTorch leaves the Shape/Gather/Unsqueeze/Concat arithmetic around the
flatten in the graph, which is what the reader's constant folding has to remove.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join("tests", "data", "onnx")


class ViewNet(nn.Module):
    """conv, relu, maxpool, x.view(x.size(0), -1), linear: 1x12x12 -> 3x5x5 -> 75 -> 4."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 5 * 5, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc(x)


class FlattenNet(nn.Module):
    """conv (stride 2, padding 1), batch norm (PyTorch folds it into the conv), relu6
    (a Clip), average pool (exported with a Pad), torch.flatten, linear:
    2x10x10 -> 4x5x5 -> 4x2x2 -> 16 -> 3."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        x = F.relu6(self.bn(self.conv(x)))
        x = F.avg_pool2d(x, 2)
        x = torch.flatten(x, 1)
        return self.fc(x)


class ReshapeNet(nn.Module):
    """conv, relu, then x.reshape(x.shape[0], x.shape[1] * x.shape[2] * x.shape[3]):
    the product of shape entries is computed in the graph (Mul on int64). 1x6x6 ->
    2x4x4 -> 32 -> 2."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 4 * 4, 2)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = x.reshape(x.shape[0], x.shape[1] * x.shape[2] * x.shape[3])
        return self.fc(x)


class MixedNet(nn.Module):
    """Two branches joined by a Concat: conv/relu/maxpool (ceil_mode) and a strided
    1x1 conv upsampled by Resize; then ConvTranspose, global average pooling,
    reshape(N, C), linear, torch.chunk (a Slice whose end is computed from the shape),
    clamp with only a lower bound, and a ReduceSum: 2x8x8 -> 6x4x4 -> 2x8x8 -> 2 -> 1."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 3, padding=1)
        self.b = nn.Conv2d(2, 3, 1, stride=4)
        self.up = nn.ConvTranspose2d(6, 2, 3, stride=2, padding=1, output_padding=1)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        a = F.max_pool2d(F.relu(self.a(x)), 2, ceil_mode=True)
        b = F.interpolate(self.b(x), scale_factor=2.0, mode="nearest")
        y = F.adaptive_avg_pool2d(self.up(torch.cat([a, b], 1)), 1)
        y = y.reshape(y.size(0), y.size(1))
        first = torch.chunk(self.fc(y), 3, dim=1)[0]
        return torch.clamp(first, min=0.0) + y[:, 1:].sum(1, keepdim=True)


def export(model, shape, name, fold=True):
    torch.manual_seed(0)
    for p in model.parameters():
        nn.init.uniform_(p, -0.5, 0.5)
    model.eval()
    path = os.path.join(OUT, name)
    torch.onnx.export(model, torch.zeros(*shape), path, opset_version=13,
                      do_constant_folding=fold,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print(path, os.path.getsize(path), "bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    export(ViewNet(), (1, 1, 12, 12), "view_cnn.onnx")
    # Unfolded by PyTorch: Clip's bounds stay Constant -> Cast chains for the reader.
    export(FlattenNet(), (1, 2, 10, 10), "flatten_cnn.onnx", fold=False)
    export(ReshapeNet(), (1, 1, 6, 6), "reshape_cnn.onnx")
    export(MixedNet(), (1, 2, 8, 8), "mixed_cnn.onnx")


if __name__ == "__main__":
    main()
