#!/usr/bin/env python3
"""Exports torchvision's ResNet-18, MobileNetV2 and VGG16 with random weights to ONNX.

The full-size nets for the benchmarks: opset 13, input "input" (N,3,224,224), output
"logits" (N,1000), N dynamic. Weights are torchvision's own initialisation under a fixed
seed (nothing is downloaded); BatchNorm running statistics come from a few training-mode
passes over random images, so activations keep a trained net's scale (with the default
statistics MobileNetV2's logits are about 1e-9, and so would be any error). Eval mode.

Beside each NAME.onnx it writes the files tests/data/models has for the small nets (see
tests/models/make_models.py): a seeded input NAME.input.npy (1,3,224,224), PyTorch's
NAME.logits.npy, the Grad-CAM tensor's value, gradient and heatmap for the predicted
class on the last activation before global pooling, and NAME.json naming that tensor.
tests/models/ort_reference.mjs --models DIR checks them against ONNX Runtime.

Usage: export_torchvision.py [--out DIR] [NAME...]   (default build/bench-models and every
model; the files are tens of MB, VGG16's 528 MB, and are not committed). Needs python3-torch, python3-torchvision, python3-onnx.
"""
import argparse
import copy
import io
import json
import os
import sys

import numpy as np
import onnx
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models"))
from make_models import OPSET, TOL_GRADCAM, TOL_LOGITS, cam_node, gradcam  # noqa: E402

SHAPE = (3, 224, 224)
MIN_MARGIN = 1e-3

# name, constructor, the module whose output Grad-CAM looks at (BasicBlock calls its
# ReLU twice; the hook keeps the last call, the block's output)
MODELS = [
    ("resnet18", torchvision.models.resnet18, "layer4.1.relu"),
    ("mobilenet_v2", torchvision.models.mobilenet_v2, "features.18.2"),
    ("vgg16", torchvision.models.vgg16, "features.29"),
]


def export(model):
    f = io.BytesIO()
    torch.onnx.export(model, torch.zeros((1,) + SHAPE), f, opset_version=OPSET, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    return f.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/bench-models")
    ap.add_argument("names", nargs="*", help="models to export (default: all)")
    args = ap.parse_args()
    unknown = set(args.names) - {m[0] for m in MODELS}
    if unknown:
        raise SystemExit(f"unknown model(s): {', '.join(sorted(unknown))}")
    os.makedirs(args.out, exist_ok=True)
    for i, (name, make, cam_module) in enumerate(MODELS):
        if args.names and name not in args.names:
            continue
        torch.manual_seed(i)
        model = make(weights=None)
        for m in model.modules():  # in-place ReLUs would hand the Grad-CAM hook a tensor changed later
            if isinstance(m, torch.nn.ReLU):
                m.inplace = False
        g = torch.Generator().manual_seed(1000 + i)
        model.train()
        with torch.no_grad():
            for _ in range(4):
                model(torch.randn((8,) + SHAPE, generator=g))
        model.eval()

        data = export(model)
        proto = onnx.load_from_string(data)
        onnx.checker.check_model(proto)
        node = cam_node(proto.graph, cam_module)

        for _ in range(20):
            x = torch.randn((1,) + SHAPE, generator=g)
            logits, classes, a, grad, cam = gradcam(model, model.get_submodule(cam_module), x)
            top2 = logits[0].topk(2).values
            if (top2[0] - top2[1]).item() > MIN_MARGIN:
                break
        else:
            raise SystemExit(f"{name}: no input with a clear top class")
        ref = copy.deepcopy(model).double()
        logits64, _, _, _, cam64 = gradcam(ref, ref.get_submodule(cam_module), x.double())
        drift = {"logits": (logits64 - logits.double()).abs().max().item(),
                 "gradcam": (cam64 - cam.double()).abs().max().item()}

        path = lambda suffix: os.path.join(args.out, f"{name}.{suffix}")
        with open(path("onnx"), "wb") as f:
            f.write(data)
        for suffix, t in [("input", x), ("logits", logits), ("activation", a), ("gradient", grad), ("gradcam", cam)]:
            np.save(path(f"{suffix}.npy"), t.numpy().astype(np.float32))
        meta = {
            "name": name,
            "opset": OPSET,
            "input": {"name": "input", "shape": [1, *SHAPE], "file": f"{name}.input.npy"},
            "output": {"name": "logits", "shape": list(logits.shape), "file": f"{name}.logits.npy"},
            "gradcam": {"module": cam_module, "node": node.name, "op_type": node.op_type, "tensor": node.output[0],
                        "shape": list(a.shape), "classes": classes, "score": "logit",
                        "activation_file": f"{name}.activation.npy", "gradient_file": f"{name}.gradient.npy",
                        "heatmap_file": f"{name}.gradcam.npy"},
            "tolerance": {"logits": TOL_LOGITS, "gradcam": TOL_GRADCAM},
            "float64_max_diff": drift,
            "seed": i,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        }
        with open(path("json"), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        print(f"{name}: {len(data) / 1e6:.1f} MB, Grad-CAM on {node.output[0]} {list(a.shape)}, class {classes[0]}")


if __name__ == "__main__":
    main()
