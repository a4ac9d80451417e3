#!/usr/bin/env python3
"""Writes the small ONNX test models and their PyTorch reference outputs.

Five nets, each the shape of a well-known family, small enough to commit:
  resnet      BasicBlocks, stride-2 downsampling, 1x1 projection shortcuts
  mobilenetv2 inverted residuals, depthwise 3x3, ReLU6 (ONNX Clip)
  squeezenet  Fire modules (Concat), ceil-mode max pools, a BatchNorm after a Concat
  efficientnet MBConv with swish (Sigmoid * x) and squeeze-and-excitation (Mul)
  avgpool     padded average pools (ceil mode, count_include_pad both ways), a padded
              ceil-mode max pool, a BatchNorm after a pool, x.view(n, -1) shape arithmetic

Every net is put in eval mode with BatchNorm running statistics that are far from
(0, 1): random affine parameters, then a few training-mode passes over random data.
The exporter folds a BatchNorm that follows a Conv into it; the ones after a pool or a
Concat stay BatchNormalization nodes.

For each net NAME this writes, into the output folder:
  NAME.onnx           opset 13, input "input" (N,3,H,W), output "logits" (N,10), N dynamic
  NAME.input.npy      float32 (2,3,H,W), seeded image-like inputs (see images())
  NAME.logits.npy     float32 (2,10), PyTorch's logits for them
  NAME.activation.npy float32 (2,C,h,w), the Grad-CAM tensor's value
  NAME.gradient.npy   float32 (2,C,h,w), d logit[i, class_i] / d activation
  NAME.gradcam.npy    float32 (2,h,w), the Grad-CAM heatmap
  NAME.json           shapes, the Grad-CAM tensor and node names, classes, tolerances

Grad-CAM is computed as convscope and pytorch-grad-cam do it (no resizing): channel
weight = mean over (h, w) of the gradient; heatmap = ReLU(sum_c weight_c * A_c), divided
by its maximum when that is positive.

Usage: make_models.py [--out DIR]   (default: tests/data/models beside this script)
Needs python3-torch and python3-onnx; the tests only read the files it writes.
"""
import argparse
import copy
import io
import json
import os
import re
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn

OPSET = 13
CLASSES = 10
BATCH = 2
TOL_LOGITS = 1e-4
TOL_GRADCAM = 1e-3
# The two images' top logits must stand apart by more than this, so that an engine
# within TOL_LOGITS picks the same class.
MIN_MARGIN = 1e-2


def conv_bn(cin, cout, k, stride=1, groups=1, act=None):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


# --- ResNet: torchvision's BasicBlock on a CIFAR-style 3x3 stem ---------------------

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, act=nn.ReLU(inplace=True))
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.layer3 = BasicBlock(32, 48, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(48, CLASSES)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- MobileNetV2: inverted residuals with depthwise convolutions and ReLU6 ------------

class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers.append(conv_bn(cin, hidden, 1, act=nn.ReLU6(inplace=True)))
        layers.append(conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6(inplace=True)))
        layers.append(conv_bn(hidden, cout, 1))
        self.conv = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, 16, 3, 2, act=nn.ReLU6(inplace=True)),
            InvertedResidual(16, 8, 1, 1),
            InvertedResidual(8, 16, 2, 4),
            InvertedResidual(16, 16, 1, 4),
            InvertedResidual(16, 24, 2, 4),
            InvertedResidual(24, 24, 1, 4),
            conv_bn(24, 96, 1, act=nn.ReLU6(inplace=True)),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(96, CLASSES))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


# --- SqueezeNet: Fire modules joined by Concat ------------------------------------------

class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.squeeze_act = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand1x1_act = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)
        self.expand3x3_act = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_act(self.squeeze(x))
        return torch.cat([self.expand1x1_act(self.expand1x1(x)), self.expand3x3_act(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(16, 8, 16),
            Fire(32, 8, 16),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(32, 12, 24),
            nn.BatchNorm2d(48),
            Fire(48, 12, 24),
        )
        self.final_conv = nn.Conv2d(48, 32, 1)
        self.final_act = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, CLASSES)

    def forward(self, x):
        x = self.final_act(self.final_conv(self.features(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- EfficientNet: MBConv with swish and squeeze-and-excitation ------------------------

class SqueezeExcitation(nn.Module):
    def __init__(self, channels, squeeze):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.avgpool(x)))))


class MBConv(nn.Module):
    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers.append(conv_bn(cin, hidden, 1, act=nn.SiLU()))
        layers.append(conv_bn(hidden, hidden, k, stride, groups=hidden, act=nn.SiLU()))
        layers.append(SqueezeExcitation(hidden, max(1, cin // 4)))
        layers.append(conv_bn(hidden, cout, 1))
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


class EfficientNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2, act=nn.SiLU())
        self.blocks = nn.Sequential(MBConv(16, 16, 3, 1, 1), MBConv(16, 24, 5, 2, 4), MBConv(24, 24, 3, 1, 4))
        self.head = conv_bn(24, 64, 1, act=nn.SiLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, CLASSES))

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


# --- Padded pools: shapes chosen so that ceil mode adds a window at every pool --------
# They avoid the case where that window would start in the right padding: PyTorch and
# ONNX Runtime's kernels drop it, ONNX's opset-13 shape inference keeps it, and the
# exporter's Pad + AveragePool for count_include_pad=True keeps it too.

class AvgPoolNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = conv_bn(3, 16, 3, act=nn.ReLU(inplace=True))                           # 30x30
        self.pool1 = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=True)   # 16x16
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 24, 3)                                                   # 14x14
        self.relu2 = nn.ReLU(inplace=True)
        self.pool2 = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)  # 8x8
        self.conv3 = conv_bn(24, 32, 1, act=nn.ReLU(inplace=True))
        self.pool3 = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)                           # 5x5
        self.conv4 = nn.Conv2d(32, 32, 3, padding=1)
        self.relu4 = nn.ReLU(inplace=True)
        self.fc = nn.Linear(32 * 5 * 5, CLASSES)

    def forward(self, x):
        x = self.bn1(self.pool1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu4(self.conv4(self.pool3(self.conv3(x))))
        return self.fc(x.view(x.size(0), -1))


# name, class, input (C,H,W), the module whose output Grad-CAM looks at, what it shows
MODELS = [
    ("resnet", ResNet, (3, 36, 36), "layer3.relu2",
     "ResNet-style: BasicBlocks, stride-2 downsampling with 1x1 projection shortcuts"),
    ("mobilenetv2", MobileNetV2, (3, 48, 48), "features.6.2",
     "MobileNetV2-style: inverted residuals, depthwise 3x3, ReLU6"),
    ("squeezenet", SqueezeNet, (3, 49, 49), "final_act",
     "SqueezeNet-style: Fire modules (Concat), ceil-mode max pools, BatchNorm after a Concat"),
    ("efficientnet", EfficientNet, (3, 40, 40), "head.2",
     "EfficientNet-style: MBConv with swish and squeeze-and-excitation (Mul), 5x5 depthwise"),
    ("avgpool", AvgPoolNet, (3, 30, 30), "relu4",
     "Padded pools: AvgPool ceil mode with count_include_pad true and false, padded ceil-mode "
     "MaxPool, BatchNorm after a pool, x.view(n, -1)"),
]


def images(n, shape, g):
    """Image-like inputs: smooth shapes (upsampled 4x4 noise), per-image colour casts and
    a little pixel noise, so that pooled features differ between images."""
    c, h, w = shape
    low = nn.functional.interpolate(torch.randn((n, c, 4, 4), generator=g), size=(h, w), mode="bilinear",
                                    align_corners=False)
    return low + 0.5 * torch.randn((n, c, 1, 1), generator=g) + 0.3 * torch.randn((n, c, h, w), generator=g)


def initialise(model, seed):
    """Weights as torchvision initialises them (He normal for convolutions), small random
    biases, and BatchNorm affine parameters away from (1, 0)."""
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_((torch.rand(m.bias.shape, generator=g) - 0.5) * 0.2)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_((torch.rand(m.num_features, generator=g) - 0.5) * 0.4)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5)
                m.bias.copy_((torch.rand(m.bias.shape, generator=g) - 0.5) * 0.2)
    return g


def settle(model, shape, g):
    """Running statistics from training-mode passes, then a classifier that sees its
    inputs standardised over a calibration set (folded into the Linear layer), so the
    logits vary with the image by about one unit, as a trained net's do."""
    model.train()
    with torch.no_grad():
        for _ in range(8):
            model(images(32, shape, g))
    model.eval()
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen = []
    h = fc.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0]))
    with torch.no_grad():
        model(images(256, shape, g))
        h.remove()
        f = seen[0].double()
        mean, std = f.mean(0), f.std(0).clamp_min(1e-3)
        w = fc.weight.double() * 1.5 / std
        fc.bias.copy_((fc.bias.double() - w @ mean).float())
        fc.weight.copy_(w.float())


def export(model, shape):
    f = io.BytesIO()
    torch.onnx.export(model, torch.zeros((1,) + shape), f, opset_version=OPSET, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    return f.getvalue()


def onnx_scope(module_name):
    """The scope the exporter gives a module's nodes: one level per module on the path,
    each named from its last non-numeric atom on ("layer3.relu2" -> "/layer3/relu2",
    "features.6.2" -> "/features/features.6/features.6.2"). A module called twice gets
    the scopes NAME and NAME_1."""
    atoms = module_name.split(".")
    levels = []
    for i in range(1, len(atoms) + 1):
        named = [j for j in range(i) if not atoms[j].isnumeric()]
        levels.append(".".join(atoms[named[-1] if named else 0:i]))
    return "/" + "/".join(levels)


def cam_node(graph, module_name):
    """The ONNX node that computes the named module's output: the last one in its scope."""
    scope = onnx_scope(module_name)
    inside = re.compile(re.escape(scope) + r"(_[0-9]+)?/")
    nodes = [n for n in graph.node if n.op_type != "Constant" and inside.match(n.name)]
    if not nodes:
        sys.exit(f"no ONNX node in scope {scope}")
    return nodes[-1]


def gradcam(model, module, x):
    """The module's output A, d logit[i, argmax_i] / dA and the Grad-CAM heatmaps."""
    saved = {}

    def hook(_m, _inp, out):
        out.retain_grad()
        saved["a"] = out

    h = module.register_forward_hook(hook)
    logits = model(x)
    h.remove()
    classes = logits.argmax(1)
    logits.gather(1, classes[:, None]).sum().backward()
    a, grad = saved["a"].detach(), saved["a"].grad.detach()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * a).sum(1))
    peak = cam.flatten(1).max(1).values
    cam = torch.where(peak[:, None, None] > 0, cam / peak.clamp_min(1e-30)[:, None, None], cam)
    return logits.detach(), classes.tolist(), a, grad, cam


def make(name, cls, shape, cam_module, description, out, seed):
    torch.manual_seed(seed)
    model = cls()
    g = initialise(model, seed)
    settle(model, shape, g)
    for p in model.parameters():
        p.requires_grad_(True)

    onnx_bytes = export(model, shape)
    proto = onnx.load_from_string(onnx_bytes)
    onnx.checker.check_model(proto)
    node = cam_node(proto.graph, cam_module)

    # Inputs whose predicted classes are clear, so the argmax is the same in any engine,
    # and differ from each other when such a pair turns up, so a batch mix-up shows.
    found = None
    for _ in range(200):
        x = images(BATCH, shape, g)
        result = gradcam(model, model.get_submodule(cam_module), x)
        top2 = result[0].topk(2, dim=1).values
        if (top2[:, 0] - top2[:, 1]).min().item() <= MIN_MARGIN:
            continue
        if found is None or len(set(result[1])) > len(set(found[1][1])):
            found = (x, result)
        if len(set(result[1])) == BATCH:
            break
    if found is None:
        sys.exit(f"{name}: no input with a clear top class")
    x, (logits, classes, a, grad, cam) = found

    with torch.no_grad():
        check = model(x)
    assert torch.equal(check, logits), "a second forward pass differs"
    # The same net in double precision: float32 rounding must stay well inside the
    # tolerances, or a correct engine could fail them.
    ref = copy.deepcopy(model).double()
    logits64, classes64, _, _, cam64 = gradcam(ref, ref.get_submodule(cam_module), x.double())
    drift = {"logits": (logits64 - logits.double()).abs().max().item(),
             "gradcam": (cam64 - cam.double()).abs().max().item()}
    if classes64 != classes or drift["logits"] > TOL_LOGITS / 10 or drift["gradcam"] > TOL_GRADCAM / 10:
        sys.exit(f"{name}: float32 and float64 disagree: classes {classes} vs {classes64}, {drift}")

    path = lambda suffix: os.path.join(out, f"{name}.{suffix}")
    with open(path("onnx"), "wb") as f:
        f.write(onnx_bytes)
    np.save(path("input.npy"), x.numpy().astype(np.float32))
    np.save(path("logits.npy"), logits.numpy().astype(np.float32))
    np.save(path("activation.npy"), a.numpy().astype(np.float32))
    np.save(path("gradient.npy"), grad.numpy().astype(np.float32))
    np.save(path("gradcam.npy"), cam.numpy().astype(np.float32))

    bn_nodes = sum(1 for n in proto.graph.node if n.op_type == "BatchNormalization")
    meta = {
        "name": name,
        "description": description,
        "opset": OPSET,
        "input": {"name": "input", "shape": [BATCH, *shape], "file": f"{name}.input.npy"},
        "output": {"name": "logits", "shape": [BATCH, CLASSES], "file": f"{name}.logits.npy"},
        "gradcam": {
            "module": cam_module,
            "node": node.name,
            "op_type": node.op_type,
            "tensor": node.output[0],
            "shape": list(a.shape),
            "classes": classes,
            "score": "logit",
            "weights": "mean over h, w of d logit[class] / d tensor",
            "heatmap": "relu(sum_c weight_c * tensor_c) / max (all zeros when max is 0)",
            "activation_file": f"{name}.activation.npy",
            "gradient_file": f"{name}.gradient.npy",
            "heatmap_file": f"{name}.gradcam.npy",
        },
        "tolerance": {"logits": TOL_LOGITS, "gradcam": TOL_GRADCAM},
        "float64_max_diff": drift,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batchnorm_nodes": bn_nodes,
        "op_types": sorted({n.op_type for n in proto.graph.node}),
        "seed": seed,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }
    text = json.dumps(meta, indent=2)
    # Flat lists (shapes, classes, op types) on one line each.
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    with open(path("json"), "w") as f:
        f.write(text + "\n")
    print(f"{name}: {len(onnx_bytes) // 1024} KB, logits range {logits.min().item():.2f}..{logits.max().item():.2f}, {meta['parameters']} parameters, classes {classes}, "
          f"Grad-CAM on {node.output[0]} {list(a.shape)}, ops {' '.join(meta['op_types'])}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "data", "models"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for i, (name, cls, shape, cam_module, description) in enumerate(MODELS):
        make(name, cls, shape, cam_module, description, args.out, seed=100 + i)


if __name__ == "__main__":
    main()
