#!/usr/bin/env python3
"""Writes tests/data/explain/fmnist_torch.json: Grad-CAM, Grad-CAM++ and Score-CAM of
the notebook's network for Fashion-MNIST test image 18 at leaky_re_lu_2, computed by
PyTorch from the papers' formulas, the reference test_explain_torch.c compares
convscope's maps with (to 1e-3).

Run from the repository's root with Debian's python3 (python3-torch; 1.13 was used):

    /usr/bin/python3 tests/explain/make_reference.py > tests/data/explain/fmnist_torch.json

The network is read from models/fmnist.csm directly (docs/model-format.md: magic,
version, JSON metadata, the float32 parameter block with each tensor's offset) and
rebuilt with torch.nn.functional in float64, channels first (kernels (kh, kw, in, out)
turned to (out, in, kh, kw); the flatten reads channels last, as Keras does). Batch
norm uses its moving statistics, dropout is off. The fixture records the file's CRC-32,
so the test can tell when the committed model changed and the fixture must be written
again.

Formulas, for the class score S (the logit, or the softmax probability) and the node's
activations A (k channels of h x w), g = dS/dA by autograd:
  Grad-CAM:   w_k = mean_ij g;                                    L = ReLU(sum_k w_k A_k)
  Grad-CAM++: alpha = g^2 / (2 g^2 + sum_ab(A_k) g^3) (0 where that is 0),
              w_k = sum_ij alpha ReLU(g);                         L = ReLU(sum_k w_k A_k)
  Score-CAM:  H_k = Up(A_k) scaled to 0..1 by its min and max (bilinear, align_corners
              False); S_k = S(x * H_k) (a black pixel is 0 for this network); constant
              maps left out; w = softmax_k(S_k);                  L = ReLU(sum_k w_k A_k)
Each map is written divided by its maximum, row-major (h, w).
"""
import gzip
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

MODEL = "models/fmnist.csm"
IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
SAMPLE = 18
LAYER = "leaky_re_lu_2"


def read_csm(path):
    b = open(path, "rb").read()
    assert b[:8] == b"CSMODEL\0", "not a convscope model"
    meta_len = struct.unpack("<I", b[12:16])[0]
    meta = json.loads(b[16:16 + meta_len])
    n = struct.unpack("<Q", b[16 + meta_len:24 + meta_len])[0]
    block = np.frombuffer(b[24 + meta_len:24 + meta_len + 4 * n], dtype="<f4").astype(np.float64)
    crc = struct.unpack("<I", b[-4:])[0]
    return meta, block, crc


def tensors(layer, block):
    out = {}
    for p in layer["params"]:
        size = int(np.prod(p["dims"]))
        out[p["name"]] = torch.from_numpy(block[p["offset"]:p["offset"] + size].reshape(p["dims"]).copy())
    return out


def forward(meta, block, x, hook_layer):
    """x: (n, 1, 28, 28). Returns the logits and the hooked layer's output (kept in the graph)."""
    hooked = None
    for layer in meta["layers"]:
        kind, cfg, t = layer["kind"], layer.get("config", {}), tensors(layer, block)
        if kind == "Conv2D":
            assert cfg["padding"] == "valid" and cfg["strides"] == 1
            x = F.conv2d(x, t["kernel"].permute(3, 2, 0, 1), t["bias"])
        elif kind == "BatchNormalization":
            shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
            inv = 1 / torch.sqrt(t["moving_variance"] + cfg["epsilon"])
            x = (x - t["moving_mean"].view(shape)) * (t["gamma"] * inv).view(shape) + t["beta"].view(shape)
        elif kind == "LeakyReLU":
            x = F.leaky_relu(x, cfg["alpha"])
        elif kind == "MaxPooling2D":
            x = F.max_pool2d(x, cfg["pool_size"])
        elif kind == "Flatten":
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        elif kind == "Dense":
            x = x @ t["kernel"] + t["bias"]  # softmax at the top is applied by the caller
        elif kind == "Dropout":
            pass
        else:
            raise SystemExit("unexpected layer kind " + kind)
        if layer["name"] == hook_layer:
            hooked = x
    return x, hooked


def score(logits, cls, kind):
    return logits[:, cls] if kind == "logit" else torch.softmax(logits, dim=1)[:, cls]


def normalised(cam):
    cam = torch.relu(cam)
    return (cam / cam.max()).reshape(-1).tolist()


def main():
    meta, block, crc = read_csm(MODEL)
    with gzip.open(IMAGES) as f:
        raw = f.read()
    img = np.frombuffer(raw[16 + SAMPLE * 784:16 + (SAMPLE + 1) * 784], dtype=np.uint8).astype(np.float64) / 255
    x = torch.from_numpy(img.reshape(1, 1, 28, 28))
    logits, a = forward(meta, block, x, LAYER)
    cls = int(torch.argmax(logits[0]))
    doc = {"model_crc32": crc, "sample": SAMPLE, "layer": LAYER, "class": cls, "maps": {}}
    for kind in ("logit", "probability"):
        logits, a = forward(meta, block, x.clone().requires_grad_(True), LAYER)
        a.retain_grad()
        score(logits, cls, kind).sum().backward()
        A, g = a.detach()[0], a.grad[0]  # (k, h, w)
        gradcam = (g.mean(dim=(1, 2))[:, None, None] * A).sum(0)
        g2, g3 = g * g, g * g * g
        den = 2 * g2 + A.sum(dim=(1, 2))[:, None, None] * g3
        alpha = torch.where(den != 0, g2 / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(den))
        gradcampp = ((alpha * torch.relu(g)).sum(dim=(1, 2))[:, None, None] * A).sum(0)
        with torch.no_grad():
            up = F.interpolate(A[:, None], size=(28, 28), mode="bilinear", align_corners=False)  # (k, 1, 28, 28)
            lo = up.amin(dim=(1, 2, 3), keepdim=True)
            hi = up.amax(dim=(1, 2, 3), keepdim=True)
            keep = (hi > lo).reshape(-1)
            masks = (up - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))
            s = score(forward(meta, block, x * masks, None)[0], cls, kind)
            w = torch.zeros(A.shape[0], dtype=torch.float64)
            w[keep] = torch.softmax(s[keep], dim=0)
            scorecam = (w[:, None, None] * A).sum(0)
        doc["maps"]["gradcam_" + kind] = normalised(gradcam)
        doc["maps"]["gradcampp_" + kind] = normalised(gradcampp)
        doc["maps"]["scorecam_" + kind] = normalised(scorecam)
    json.dump(doc, sys.stdout, indent=None)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
