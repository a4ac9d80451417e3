#!/usr/bin/env python3
"""Exports the notebook's Fashion-MNIST network, as a convscope model file holds it, to ONNX.

The benchmarks run ONNX Runtime on the same network with the same weights as convscope:
this reads the .csm (docs/model-format.md: magic, version, JSON metadata, float32
parameters, CRC-32), rebuilds the network in PyTorch layer by layer (Keras' layouts turned
into PyTorch's: conv kernels (kh, kw, in, out) to (out, in, kh, kw), dense kernels
transposed, the flatten in Keras' height, width, channels order) and exports it in eval
mode: opset 13, input "input" (N,1,28,28), output "probabilities" (N,10), N dynamic.

Beside OUT/fmnist.onnx it writes a copy of the model file (fmnist.csm, which convscope's
side of the benchmark runs), eight test images (fmnist.input.npy, NCHW, pixels / 255; the
Fashion-MNIST test set when it is installed, else seeded noise), and PyTorch's
fmnist.logits.npy and fmnist.probabilities.npy for them: bench/onnx_models.c checks
convscope's logits and bench/ort_compare.mjs ONNX Runtime's probabilities against them.

Usage: export_fmnist.py [--model models/fmnist.csm] [--data DIR] [--out build/bench-models]
Needs python3-torch, python3-onnx, numpy.
"""
import argparse
import gzip
import io
import json
import os
import shutil
import struct
import zlib

import numpy as np
import onnx
import torch

OPSET = 13
MAGIC = b"CSMODEL\0"
# The notebook's layer kinds, in order (DESIGN: the Fashion-MNIST network).
KINDS = ["Conv2D", "BatchNormalization", "LeakyReLU", "MaxPooling2D", "Conv2D", "BatchNormalization", "LeakyReLU",
         "MaxPooling2D", "Flatten", "Dense", "BatchNormalization", "LeakyReLU", "Dropout", "Dense"]


def read_csm(path):
    data = open(path, "rb").read()
    if data[:8] != MAGIC:
        raise SystemExit(f"{path}: not a convscope model file")
    (length,) = struct.unpack_from("<I", data, 12)
    meta = json.loads(data[16:16 + length])
    (count,) = struct.unpack_from("<Q", data, 16 + length)
    start = 24 + length
    if len(data) != start + 4 * count + 4 or zlib.crc32(data[:-4]) != struct.unpack_from("<I", data, len(data) - 4)[0]:
        raise SystemExit(f"{path}: truncated or damaged (size or checksum)")
    block = np.frombuffer(data, dtype="<f4", count=count, offset=start)
    return meta, block


def tensor(block, p):
    size = int(np.prod(p["dims"]))
    return torch.from_numpy(block[p["offset"]:p["offset"] + size].reshape(p["dims"]).copy())


class Notebook(torch.nn.Module):
    def __init__(self, meta, block):
        super().__init__()
        layers = meta["layers"]
        if [l["kind"] for l in layers] != KINDS:
            raise SystemExit("the model is not the notebook's network: " + ", ".join(l["kind"] for l in layers))
        params = [{p["name"]: tensor(block, p) for p in l["params"]} for l in layers]
        cfg = [l.get("config", {}) for l in layers]

        def conv(i):
            k = params[i]["kernel"]  # (kh, kw, in, out)
            c = torch.nn.Conv2d(k.shape[2], k.shape[3], k.shape[0])
            c.weight.data = k.permute(3, 2, 0, 1).contiguous()
            c.bias.data = params[i]["bias"]
            return c

        def bn(i, dims):
            b = (torch.nn.BatchNorm2d if dims == 2 else torch.nn.BatchNorm1d)(params[i]["gamma"].numel(),
                                                                                  eps=cfg[i]["epsilon"])
            b.weight.data, b.bias.data = params[i]["gamma"], params[i]["beta"]
            b.running_mean.data, b.running_var.data = params[i]["moving_mean"], params[i]["moving_variance"]
            return b

        def dense(i):
            k = params[i]["kernel"]  # (in, out)
            d = torch.nn.Linear(k.shape[0], k.shape[1])
            d.weight.data = k.t().contiguous()
            d.bias.data = params[i]["bias"]
            return d

        self.block1 = torch.nn.Sequential(conv(0), bn(1, 2), torch.nn.LeakyReLU(cfg[2]["alpha"]), torch.nn.MaxPool2d(2))
        self.block2 = torch.nn.Sequential(conv(4), bn(5, 2), torch.nn.LeakyReLU(cfg[6]["alpha"]), torch.nn.MaxPool2d(2))
        self.head = torch.nn.Sequential(dense(9), bn(10, 1), torch.nn.LeakyReLU(cfg[11]["alpha"]))
        self.top = dense(13)

    def logits(self, x):
        x = self.block2(self.block1(x))
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # Keras flattens height, width, channels
        return self.top(self.head(x))

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=1)


def test_images(data_dir, n):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            raw = (gzip.open if name.endswith(".gz") else open)(path, "rb").read()
            return np.frombuffer(raw, np.uint8, count=n * 784, offset=16).reshape(n, 1, 28, 28).astype(np.float32) / 255
    return np.random.default_rng(0).random((n, 1, 28, 28), dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/fmnist.csm")
    ap.add_argument("--data", default=os.environ.get("CONVSCOPE_DATA", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--out", default="build/bench-models")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    meta, block = read_csm(args.model)
    model = Notebook(meta, block).eval()

    f = io.BytesIO()
    torch.onnx.export(model, torch.zeros((1, 1, 28, 28)), f, opset_version=OPSET, input_names=["input"],
                      output_names=["probabilities"], dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
                      do_constant_folding=True)
    onnx.checker.check_model(onnx.load_from_string(f.getvalue()))
    with open(os.path.join(args.out, "fmnist.onnx"), "wb") as out:
        out.write(f.getvalue())
    shutil.copyfile(args.model, os.path.join(args.out, "fmnist.csm"))
    x = torch.from_numpy(test_images(args.data, 8))
    with torch.no_grad():
        logits = model.logits(x)
    np.save(os.path.join(args.out, "fmnist.input.npy"), x.numpy())
    np.save(os.path.join(args.out, "fmnist.logits.npy"), logits.numpy())
    np.save(os.path.join(args.out, "fmnist.probabilities.npy"), torch.softmax(logits, 1).numpy())
    print(f"fmnist: {len(f.getvalue()) / 1e3:.0f} kB, classes of the 8 images {logits.argmax(1).tolist()}")


if __name__ == "__main__":
    main()
