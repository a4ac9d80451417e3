#!/usr/bin/env python3
"""PyTorch's side of bench/train_models.c: the same four networks, trained the same way.

The networks are bench/train_nets.h's, layer for layer: the notebook's CNN, a small
ResNet, a small MobileNet and a small Inception net for Fashion-MNIST (28x28x1, 10
classes), every conv with a bias, batch norms with Keras' momentum 0.99 (PyTorch's 0.01)
and epsilon 1e-3. A training step is the core's: a shuffled batch of the training images
(pixels / 255), cross-entropy of the logits (plus the notebook's l1_l2 penalties on its
conv and dense kernels), backward, Adam (lr 1e-3, betas 0.9 / 0.999, epsilon 1e-7).

It serves the C benchmark over stdin and stdout so the two take turns in one run:
  -> "net NAME TRAINABLE_PARAMS" for each network, then "ready"
  <- "run NAME STEPS"   -> "done NAME SECONDS" (STEPS training steps, timed)
  <- "quit"
If PyTorch cannot be imported it prints "skip: REASON" and exits 0.

Usage: train_models_torch.py [--threads N] [--batch 128] [--data DIR] [--seed 1]
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # the benchmark reports it and goes on without PyTorch
    print(f"skip: PyTorch cannot be imported ({e})", flush=True)
    sys.exit(0)

BN_MOMENTUM, BN_EPS = 0.01, 1e-3


def conv_bn(cin, cout, k, stride=1, act="relu", depthwise=False):
    layers = [nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=cin if depthwise else 1),
              nn.BatchNorm2d(cout, momentum=BN_MOMENTUM, eps=BN_EPS)]
    if act == "relu":
        layers.append(nn.ReLU())
    elif act == "relu6":
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class Notebook(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32, momentum=BN_MOMENTUM, eps=BN_EPS), nn.LeakyReLU(0.3),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64, momentum=BN_MOMENTUM, eps=BN_EPS), nn.LeakyReLU(0.3),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(1600, 64), nn.BatchNorm1d(64, momentum=BN_MOMENTUM, eps=BN_EPS), nn.LeakyReLU(0.3),
            nn.Dropout(0.4), nn.Linear(64, 10))
        self.penalised = [self.features[0].weight, self.features[4].weight, self.features[9].weight]

    def forward(self, x):
        return self.features(x)

    def penalty(self):
        return sum(1e-5 * w.abs().sum() + 1e-4 * (w * w).sum() for w in self.penalised)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = conv_bn(cout, cout, 3, 1, act=None)
        self.short = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return F.relu(y + (self.short(x) if self.short is not None else x))


class Head(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.dense = nn.Linear(channels, 10)

    def forward(self, x):
        return self.dense(x.mean(dim=(2, 3)))


def resnet():
    return nn.Sequential(conv_bn(1, 16, 3), ResBlock(16, 16, 1), ResBlock(16, 32, 2), ResBlock(32, 64, 2), Head(64))


def mobile_block(cin, cout, stride):
    return nn.Sequential(conv_bn(cin, cin, 3, stride, "relu6", depthwise=True), conv_bn(cin, cout, 1, 1, "relu6"))


def mobilenet():
    return nn.Sequential(conv_bn(1, 16, 3, 1, "relu6"), mobile_block(16, 32, 1), mobile_block(32, 64, 2),
                         mobile_block(64, 64, 1), mobile_block(64, 128, 2), mobile_block(128, 128, 1), Head(128))


class Inception(nn.Module):
    def __init__(self, cin, c1, r3, c3, r5, c5, cp):
        super().__init__()
        self.b1 = conv_bn(cin, c1, 1)
        self.b3 = nn.Sequential(conv_bn(cin, r3, 1), conv_bn(r3, c3, 3))
        self.b5 = nn.Sequential(conv_bn(cin, r5, 1), conv_bn(r5, c5, 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(cin, cp, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


def inception():
    return nn.Sequential(conv_bn(1, 32, 3), nn.MaxPool2d(2), Inception(32, 16, 16, 24, 8, 8, 8), nn.MaxPool2d(2),
                         Inception(56, 32, 32, 48, 8, 16, 16), Head(112))


NETS = {"notebook": Notebook, "resnet": resnet, "mobilenet": mobilenet, "inception": inception}


def load_images(folder):
    def idx(name):
        for path in (os.path.join(folder, name + ".gz"), os.path.join(folder, name)):
            if os.path.exists(path):
                data = (gzip.open if path.endswith(".gz") else open)(path, "rb").read()
                return data
        raise SystemExit(f"train_models_torch: {name} not found in {folder}")

    img, lab = idx("train-images-idx3-ubyte"), idx("train-labels-idx1-ubyte")
    n = int.from_bytes(img[4:8], "big")
    x = np.frombuffer(img, dtype=np.uint8, offset=16).reshape(n, 1, 28, 28)
    y = np.frombuffer(lab, dtype=np.uint8, offset=8)
    return torch.from_numpy(x.astype(np.float32) / 255), torch.from_numpy(y.astype(np.int64))


class Trainer:
    def __init__(self, net, x, y, batch, gen):
        self.net, self.x, self.y, self.batch, self.gen = net, x, y, batch, gen
        self.opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        self.order, self.at = torch.randperm(len(x), generator=gen), 0

    def step(self):
        if self.at + self.batch > len(self.order):
            self.order, self.at = torch.randperm(len(self.x), generator=self.gen), 0
        idx = self.order[self.at:self.at + self.batch]
        self.at += self.batch
        xb, yb = self.x[idx], self.y[idx]
        loss = F.cross_entropy(self.net(xb), yb)
        if hasattr(self.net, "penalty"):
            loss = loss + self.net.penalty()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y = load_images(a.data)
    gen = torch.Generator().manual_seed(a.seed)
    trainers = {}
    for name, make in NETS.items():
        net = make()
        net.train()
        trainers[name] = Trainer(net, x, y, a.batch, gen)
        count = sum(p.numel() for p in net.parameters() if p.requires_grad)
        print(f"net {name} {count}", flush=True)
    print(f"ready torch {torch.__version__} threads {torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] != "run" or len(words) != 3 or words[1] not in trainers:
            print(f"error: bad command {line.strip()!r}", flush=True)
            continue
        t = trainers[words[1]]
        start = time.perf_counter()
        for _ in range(int(words[2])):
            t.step()
        print(f"done {words[1]} {time.perf_counter() - start:.6f}", flush=True)


if __name__ == "__main__":
    main()
