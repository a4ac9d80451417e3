#!/usr/bin/env python3
"""Writes small Keras full-model files the way Keras writes them, and their outputs.

Keras itself is not needed (nor installable here): the files are written with h5py and
zipfile in the exact layout of Keras' savers:
  - Keras 2 model.save("m.h5") (legacy_h5_format.save_model_to_hdf5): root attributes
    keras_version, backend, model_config (the JSON, as UTF-8 bytes) and
    training_config; a group model_weights with attributes layer_names, backend,
    keras_version, one group per layer (created in name order) with the attribute
    weight_names ("conv2d/kernel:0", ...; an empty float array for layers without
    weights) and the datasets at those paths; an empty top_level_model_weights group.
  - Keras 3 model.save("m.keras") (saving_lib): a zip (stored, not deflated) of
    metadata.json, config.json and model.weights.h5, whose groups are vars (the
    model's own, empty) and layers/<class in snake case>[_k]/vars/0..n, numbered
    per class in the order of the layers, the variables in Keras' order (trainable
    ones first).
The configurations are in the Keras 2 shape (inbound_nodes [[[name, 0, 0, {}]]],
batch_input_shape, BatchNormalization axis [3]) or the Keras 3 shape (module,
registered_name, inbound_nodes [{"args": [__keras_tensor__ ...], "kwargs": {}}],
batch_shape, DTypePolicy dicts).

The outputs are computed independently with PyTorch in float64 (a port of each layer
with the same weights), and stored as NAME.output.npy beside NAME.input.npy (NHWC
float32 images). NAME.json says which node of the imported model holds the output.

Usage: make_keras.py [--out DIR]   (default: tests/data/keras beside this script)
Needs python3-h5py, python3-torch and numpy; the tests only read the files it writes.
"""
import argparse
import io
import json
import math
import os
import zipfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F

BATCH = 2
torch.set_default_dtype(torch.float64)


# ---- the networks: (class, name, inputs, config) --------------------------------------

def seq(layers):
    """Chains layers: each reads the one before it (the first reads the input)."""
    out, prev = [], "input"
    for cls, name, cfg in layers:
        out.append((cls, name, [prev], cfg))
        prev = name
    return out


def k2_sequential():
    return (12, 12, 1), seq([
        ("Conv2D", "conv2d", dict(filters=4, kernel_size=[3, 3], padding="valid", activation="linear",
                                  kernel_initializer="HeNormal", l1l2=(1e-5, 1e-4))),
        ("BatchNormalization", "batch_normalization", dict()),
        ("LeakyReLU", "leaky_re_lu", dict(alpha=0.30000001192092896)),
        ("MaxPooling2D", "max_pooling2d", dict(pool_size=[2, 2], strides=[2, 2], padding="valid")),
        ("Conv2D", "conv2d_1", dict(filters=6, kernel_size=[3, 3], padding="same", activation="sigmoid",
                                    use_bias=False)),
        ("ReLU", "re_lu", dict(max_value=0.75, negative_slope=0.0, threshold=0.0)),
        ("Flatten", "flatten", dict()),
        ("Dense", "dense", dict(units=8, activation="relu")),
        ("BatchNormalization", "batch_normalization_1", dict(center=False)),
        ("Dropout", "dropout", dict(rate=0.4)),
        ("Dense", "dense_1", dict(units=5, activation="softmax")),
    ])


def k2_functional():
    net = [
        ("Rescaling", "rescale", ["input"], dict(scale=1 / 255.0, offset=0.0)),
        ("Conv2D", "stem", ["rescale"], dict(filters=6, kernel_size=[3, 3], padding="same", activation="relu")),
        ("Conv2D", "branch_a", ["stem"], dict(filters=6, kernel_size=[3, 3], strides=[1, 1], padding="same")),
        ("BatchNormalization", "branch_a_bn", ["branch_a"], dict()),
        ("Activation", "branch_a_relu", ["branch_a_bn"], dict(activation="relu")),
        ("DepthwiseConv2D", "branch_b", ["stem"], dict(kernel_size=[3, 3], padding="same", depth_multiplier=1,
                                                       activation="tanh")),
        ("Add", "add", ["branch_a_relu", "branch_b"], dict()),
        ("Concatenate", "concat", ["add", "stem"], dict(axis=-1)),
        ("ZeroPadding2D", "pad", ["concat"], dict(padding=[[1, 0], [0, 1]])),
        ("Conv2D", "down", ["pad"], dict(filters=8, kernel_size=[3, 3], strides=[2, 2], padding="valid",
                                         activation="elu")),
        ("AveragePooling2D", "pool", ["down"], dict(pool_size=[2, 2], strides=[1, 1], padding="same")),
        ("GlobalAveragePooling2D", "gap", ["pool"], dict()),
        ("Dense", "logits", ["gap"], dict(units=4, activation="linear")),
    ]
    return (10, 10, 3), net


def k3_functional():
    net = [
        ("Rescaling", "rescaling", ["input"], dict(scale=2.0, offset=-1.0)),
        ("Conv2D", "conv2d", ["rescaling"], dict(filters=4, kernel_size=[3, 3], strides=[2, 2], padding="same",
                                                 activation="hard_sigmoid")),
        ("BatchNormalization", "batch_normalization", ["conv2d"], dict(center=False)),
        ("ReLU", "re_lu", ["batch_normalization"], dict(max_value=None, negative_slope=0.0, threshold=0.0)),
        ("SeparableConv2D", "separable_conv2d", ["re_lu"], dict(filters=6, kernel_size=[3, 3], padding="same",
                                                                depth_multiplier=2, activation="relu")),
        ("GlobalAveragePooling2D", "squeeze", ["separable_conv2d"], dict()),
        ("Dense", "excite", ["squeeze"], dict(units=6, activation="sigmoid")),
        ("Reshape", "excite_map", ["excite"], dict(target_shape=[1, 1, 6])),
        ("Multiply", "scaled", ["separable_conv2d", "excite_map"], dict()),
        ("MaxPooling2D", "max_pooling2d", ["scaled"], dict(pool_size=[2, 2], strides=[1, 1], padding="valid")),
        ("Conv2D", "side", ["re_lu"], dict(filters=6, kernel_size=[2, 2], padding="valid", activation="linear")),
        ("Subtract", "diff", ["max_pooling2d", "side"], dict()),
        ("Flatten", "flatten", ["diff"], dict()),
        ("Dense", "hidden", ["flatten"], dict(units=7, activation="swish")),
        ("Dense", "dense", ["hidden"], dict(units=3, activation="softmax")),
    ]
    return (9, 9, 2), net


def k3_sequential():
    # Names other than Keras' own: Keras 3 files address weights by class, not name.
    return (8, 8, 3), seq([
        ("Conv2D", "stem", dict(filters=5, kernel_size=[3, 3], padding="valid", activation="relu")),
        ("Conv2D", "body", dict(filters=4, kernel_size=[1, 1], padding="valid", activation="gelu")),
        ("BatchNormalization", "norm", dict()),
        ("Dense", "per_pixel", dict(units=3, activation="linear")),
        ("GlobalMaxPooling2D", "gmp", dict()),
        ("Dense", "head", dict(units=6, activation="relu6")),
        ("Dense", "out", dict(units=2, activation="linear")),
    ])


NETWORKS = {
    "k2_sequential": (k2_sequential, 2, "Sequential"),
    "k2_functional": (k2_functional, 2, "Functional"),
    "k3_functional": (k3_functional, 3, "Functional"),
    "k3_sequential": (k3_sequential, 3, "Sequential"),
}


# ---- weights, and the reference forward in float64 ---------------------------------

def weight_shapes(cls, cfg, in_shape):
    """Keras' variables of a layer, in its order, as (name, shape)."""
    c = in_shape[-1]
    bias = cfg.get("use_bias", True)
    if cls == "Conv2D":
        kh, kw = cfg["kernel_size"]
        return [("kernel", (kh, kw, c, cfg["filters"]))] + ([("bias", (cfg["filters"],))] if bias else [])
    if cls == "DepthwiseConv2D":
        kh, kw = cfg["kernel_size"]
        m = cfg.get("depth_multiplier", 1)
        return [("depthwise_kernel", (kh, kw, c, m))] + ([("bias", (c * m,))] if bias else [])
    if cls == "SeparableConv2D":
        kh, kw = cfg["kernel_size"]
        m = cfg.get("depth_multiplier", 1)
        return [("depthwise_kernel", (kh, kw, c, m)), ("pointwise_kernel", (1, 1, c * m, cfg["filters"]))] + (
            [("bias", (cfg["filters"],))] if bias else [])
    if cls == "Dense":
        return [("kernel", (c, cfg["units"]))] + ([("bias", (cfg["units"],))] if bias else [])
    if cls == "BatchNormalization":
        out = []
        if cfg.get("scale", True):
            out.append(("gamma", (c,)))
        if cfg.get("center", True):
            out.append(("beta", (c,)))
        return out + [("moving_mean", (c,)), ("moving_variance", (c,))]
    return []


def make_weights(cls, cfg, in_shape, rng):
    out = []
    for name, shape in weight_shapes(cls, cfg, in_shape):
        if name == "gamma":
            v = rng.uniform(0.5, 1.5, shape)
        elif name == "moving_variance":
            v = rng.uniform(0.3, 2.0, shape)
        elif name in ("beta", "moving_mean", "bias"):
            v = rng.normal(0, 0.3, shape)
        else:
            fan_in = int(np.prod(shape[:-1]))
            v = rng.normal(0, 1.2 / math.sqrt(fan_in), shape)
        out.append((name, v.astype(np.float32)))
    return out


def same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def activation(x, name):
    return {
        "linear": lambda v: v, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "softmax": lambda v: torch.softmax(v, dim=1), "elu": F.elu, "swish": lambda v: v * torch.sigmoid(v),
        "relu6": lambda v: torch.clamp(v, 0, 6), "gelu": lambda v: F.gelu(v),
        # Keras 3's hard_sigmoid: relu6(x + 3) / 6.
        "hard_sigmoid": lambda v: torch.clamp(v + 3, 0, 6) / 6,
    }[name](x)


def conv(x, kernel, cfg, groups=1):
    """x (N, C, H, W); kernel in Keras' (kh, kw, in/groups, out) layout."""
    kh, kw = kernel.shape[0], kernel.shape[1]
    sh, sw = cfg.get("strides", [1, 1])
    if cfg.get("padding", "valid") == "same":
        t, b = same_pads(x.shape[2], kh, sh)
        l, r = same_pads(x.shape[3], kw, sw)
        x = F.pad(x, (l, r, t, b))
    w = torch.from_numpy(kernel.astype(np.float64)).permute(3, 2, 0, 1)
    return F.conv2d(x, w, stride=(sh, sw), groups=groups)


def depthwise(x, kernel, cfg):
    kh, kw, c, m = kernel.shape
    # Output channel c*m + j reads input channel c with kernel[:, :, c, j].
    grouped = kernel.reshape(kh, kw, 1, c * m)
    return conv(x, grouped, cfg, groups=c)


def forward(cls, cfg, xs, weights):
    """One layer on NCHW float64 tensors (vectors as (N, F))."""
    wd = {n: v for n, v in weights}
    x = xs[0]
    bias = lambda y: y + torch.from_numpy(wd["bias"].astype(np.float64)).reshape(1, -1, *([1] * (y.dim() - 2))) \
        if "bias" in wd else y
    if cls == "Conv2D":
        return activation(bias(conv(x, wd["kernel"], cfg)), cfg.get("activation", "linear"))
    if cls == "DepthwiseConv2D":
        return activation(bias(depthwise(x, wd["depthwise_kernel"], cfg)), cfg.get("activation", "linear"))
    if cls == "SeparableConv2D":
        y = depthwise(x, wd["depthwise_kernel"], cfg)
        y = conv(y, wd["pointwise_kernel"], {})
        return activation(bias(y), cfg.get("activation", "linear"))
    if cls == "Dense":
        k = torch.from_numpy(wd["kernel"].astype(np.float64))
        if x.dim() == 4:  # over the last (channel) axis at every position
            y = torch.einsum("nchw,cu->nuhw", x, k)
        else:
            y = x @ k
        return activation(bias(y), cfg.get("activation", "linear"))
    if cls == "BatchNormalization":
        c = x.shape[1]
        g = torch.from_numpy(wd["gamma"].astype(np.float64)) if "gamma" in wd else torch.ones(c)
        b = torch.from_numpy(wd["beta"].astype(np.float64)) if "beta" in wd else torch.zeros(c)
        mean = torch.from_numpy(wd["moving_mean"].astype(np.float64))
        var = torch.from_numpy(wd["moving_variance"].astype(np.float64))
        return F.batch_norm(x, mean, var, g, b, False, 0.0, cfg.get("epsilon", 1e-3))
    if cls == "Activation":
        return activation(x, cfg["activation"])
    if cls == "LeakyReLU":
        return F.leaky_relu(x, cfg.get("alpha", cfg.get("negative_slope", 0.3)))
    if cls == "ReLU":
        y = F.relu(x)
        return torch.clamp(y, max=cfg["max_value"]) if cfg.get("max_value") is not None else y
    if cls == "MaxPooling2D":
        return F.max_pool2d(x, cfg["pool_size"], cfg["strides"])
    if cls == "AveragePooling2D":
        # 'same' averages only the pixels inside the image, as Keras does.
        kh, kw = cfg["pool_size"]
        sh, sw = cfg["strides"]
        t, b = same_pads(x.shape[2], kh, sh)
        l, r = same_pads(x.shape[3], kw, sw)
        ones = torch.ones(1, 1, x.shape[2], x.shape[3])
        s = F.avg_pool2d(F.pad(x, (l, r, t, b)), (kh, kw), (sh, sw), divisor_override=1)
        n = F.avg_pool2d(F.pad(ones, (l, r, t, b)), (kh, kw), (sh, sw), divisor_override=1)
        return s / n
    if cls == "GlobalAveragePooling2D":
        return x.mean(dim=(2, 3))
    if cls == "GlobalMaxPooling2D":
        return x.amax(dim=(2, 3))
    if cls == "Flatten":
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # channels-last order
    if cls == "Reshape":
        return x.reshape(x.shape[0], x.shape[1], 1, 1)  # a vector to (1, 1, c)
    if cls == "Dropout":
        return x
    if cls == "Add":
        return xs[0] + xs[1]
    if cls == "Subtract":
        return xs[0] - xs[1]
    if cls == "Multiply":
        return xs[0] * xs[1]
    if cls == "Concatenate":
        return torch.cat(xs, dim=1)
    if cls == "ZeroPadding2D":
        (t, b), (l, r) = cfg["padding"]
        return F.pad(x, (l, r, t, b))
    if cls == "Rescaling":
        return x * cfg["scale"] + cfg.get("offset", 0.0)
    raise ValueError(cls)


def nhwc_shape(y):
    return tuple(y.shape[1:]) if y.dim() == 2 else (y.shape[2], y.shape[3], y.shape[1])


# ---- Keras' configuration JSON -----------------------------------------------------

def initializer(name, k3):
    cls = {"HeNormal": "HeNormal", "glorot": "GlorotUniform", "zeros": "Zeros", "ones": "Ones"}[name]
    d = {"class_name": cls, "config": {"seed": None} if cls in ("HeNormal", "GlorotUniform") else {}}
    if k3:
        d = {"module": "keras.initializers", **d, "registered_name": None}
    return d


def dtype(k3):
    if k3:
        return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
    return "float32"


def layer_config(cls, name, cfg, k3, axis_rank):
    """The config dict Keras writes for a layer of these settings."""
    c = {"name": name, "trainable": True, "dtype": dtype(k3)}
    reg = None
    if "l1l2" in cfg:
        l1, l2 = cfg["l1l2"]
        reg = {"class_name": "L1L2", "config": {"l1": l1, "l2": l2}}
        if k3:
            reg = {"module": "keras.regularizers", **reg, "registered_name": None}
    kinit = initializer(cfg.get("kernel_initializer", "glorot"), k3)
    common = {"activation": cfg.get("activation", "linear"), "use_bias": cfg.get("use_bias", True)}
    if cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        c.update({"kernel_size": cfg["kernel_size"], "strides": cfg.get("strides", [1, 1]),
                  "padding": cfg.get("padding", "valid"), "data_format": "channels_last",
                  "dilation_rate": [1, 1], "groups": 1})
        if cls != "DepthwiseConv2D":
            c = {**c, "filters": cfg["filters"]}
        if cls != "Conv2D":
            c["depth_multiplier"] = cfg.get("depth_multiplier", 1)
        c.update(common)
        if cls == "Conv2D":
            c.update({"kernel_initializer": kinit, "kernel_regularizer": reg})
        else:
            c.update({"depthwise_initializer": kinit, "depthwise_regularizer": reg})
            if cls == "SeparableConv2D":
                c.update({"pointwise_initializer": kinit, "pointwise_regularizer": None})
        c.update({"bias_initializer": initializer("zeros", k3), "bias_regularizer": None,
                  "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None})
    elif cls == "Dense":
        c.update({"units": cfg["units"], **common, "kernel_initializer": kinit,
                  "bias_initializer": initializer("zeros", k3), "kernel_regularizer": reg, "bias_regularizer": None,
                  "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None})
    elif cls == "BatchNormalization":
        c.update({"axis": -1 if k3 else [axis_rank - 1], "momentum": 0.99, "epsilon": 0.001,
                  "center": cfg.get("center", True), "scale": cfg.get("scale", True),
                  "beta_initializer": initializer("zeros", k3), "gamma_initializer": initializer("ones", k3),
                  "moving_mean_initializer": initializer("zeros", k3),
                  "moving_variance_initializer": initializer("ones", k3), "beta_regularizer": None,
                  "gamma_regularizer": None, "beta_constraint": None, "gamma_constraint": None})
        if k3:
            c["synchronized"] = False
    elif cls == "LeakyReLU":
        c["negative_slope" if k3 else "alpha"] = cfg.get("alpha", 0.3)
    elif cls in ("MaxPooling2D", "AveragePooling2D"):
        c.update({"pool_size": cfg["pool_size"], "padding": cfg.get("padding", "valid"),
                  "strides": cfg.get("strides"), "data_format": "channels_last"})
    elif cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        c.update({"data_format": "channels_last", "keepdims": False})
    elif cls == "Flatten":
        c["data_format"] = "channels_last"
    elif cls == "Dropout":
        c.update({"rate": cfg["rate"], "noise_shape": None, "seed": None})
    elif cls == "Concatenate":
        c["axis"] = cfg.get("axis", -1)
    else:
        c.update(cfg)
    return c


def keras_tensor(shape, layer):
    return {"class_name": "__keras_tensor__",
            "config": {"shape": [None, *shape], "dtype": "float32", "keras_history": [layer, 0, 0]}}


def model_config(kind, k3, input_shape, net, shapes, ranks):
    in_name = "input_layer" if k3 else ("input_1" if kind == "Functional" else "conv2d_input")
    in_cfg = {"batch_shape" if k3 else "batch_input_shape": [None, *input_shape], "dtype": "float32",
              "sparse": False, "name": in_name}
    if not k3:
        in_cfg["ragged"] = False
    layers = [{"class_name": "InputLayer", "config": in_cfg}]
    if k3:
        layers[0] = {"module": "keras.layers", **layers[0], "registered_name": None}
    for cls, name, inputs, cfg in net:
        srcs = [in_name if i == "input" else i for i in inputs]
        rank = ranks[inputs[0]]
        entry = {"class_name": cls, "config": layer_config(cls, name, cfg, k3, rank)}
        if k3:
            shape = list(shapes[inputs[0]])
            entry = {"module": "keras.layers", **entry, "registered_name": None,
                     "build_config": {"input_shape": [None, *shape]}}
        if kind == "Sequential" and not k3 and name == net[0][1]:
            entry["config"]["batch_input_shape"] = [None, *input_shape]
        layers.append(entry)
        if kind != "Functional":
            continue
        entry["name"] = name
        if k3:
            tensors = [keras_tensor(list(shapes[i]), s) for i, s in zip(inputs, srcs)]
            entry["inbound_nodes"] = [{"args": [tensors] if len(tensors) > 1 else tensors, "kwargs": {}}]
        else:
            entry["inbound_nodes"] = [[[s, 0, 0, {}] for s in srcs]]
    if kind == "Functional":
        for layer in layers[:1]:
            layer["name"] = in_name
            layer["inbound_nodes"] = []
        config = {"name": "model" if not k3 else "functional", "trainable": True, "layers": layers,
                  "input_layers": [[in_name, 0, 0]], "output_layers": [[net[-1][1], 0, 0]]}
    else:
        config = {"name": "sequential", "layers": layers}
        if k3:
            config = {"name": "sequential", "trainable": True, "dtype": dtype(True), "layers": layers,
                      "build_input_shape": [None, *input_shape]}
    root = {"class_name": kind, "config": config}
    if k3:
        root = {"module": "keras", **root, "registered_name": "Functional" if kind == "Functional" else None,
                "build_config": {"input_shape": None if kind == "Functional" else [None, *input_shape]},
                "compile_config": None}
    else:
        root.update({"keras_version": "2.12.0", "backend": "tensorflow"})
    return root


# ---- the containers --------------------------------------------------------------------

def write_keras2(path, config, net, weights):
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.12.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode("utf8")
        f.attrs["training_config"] = json.dumps({"loss": "sparse_categorical_crossentropy", "metrics": None,
                                                 "optimizer_config": {"class_name": "Adam",
                                                                      "config": {"learning_rate": 0.001}}}).encode("utf8")
        g = f.create_group("model_weights")
        names = [layer["config"]["name"] for layer in config["config"]["layers"]]
        if config["class_name"] == "Sequential":
            names = names[1:]  # model.layers of a Sequential leaves out its InputLayer
        g.attrs["layer_names"] = [n.encode("utf8") for n in names]
        g.attrs["backend"] = b"tensorflow"
        g.attrs["keras_version"] = b"2.12.0"
        for name in sorted(names):
            lg = g.create_group(name)
            ws = weights.get(name, [])
            wnames = [f"{name}/{w}:0".encode("utf8") for w, _ in ws]
            lg.attrs["weight_names"] = wnames if wnames else np.asarray([])
            for wn, (_, v) in zip(wnames, ws):
                d = lg.create_dataset(wn.decode(), v.shape, dtype=v.dtype)
                d[:] = v
        top = g.create_group("top_level_model_weights")
        top.attrs["weight_names"] = np.asarray([])


def snake(cls):
    import re
    name = re.sub(r"\W+", "", cls)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def write_keras3(path, config, net, weights):
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")
        layers = f.create_group("layers")
        used = {}
        classes = [("InputLayer", None)] if config["class_name"] == "Functional" else []
        for cls, name, _, _ in net:
            classes.append((cls, name))
        for cls, name in classes:
            base = snake(cls)
            if base in used:
                used[base] += 1
                base = f"{base}_{used[base]}"
            else:
                used[base] = 0
            v = layers.create_group(base).create_group("vars")
            for i, (_, value) in enumerate(weights.get(name, [])):
                v[str(i)] = value
        f.create_group("optimizer").create_group("vars")
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("metadata.json", "w") as m:
            m.write(json.dumps({"keras_version": "3.3.3", "date_saved": "2024-05-01@12:00:00"}).encode())
        with zf.open("config.json", "w") as c:
            c.write(json.dumps(config).encode())
        zf.writestr("model.weights.h5", buf.getvalue())


def images(shape, seed):
    rng = np.random.default_rng(seed)
    h, w, c = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    out = []
    for b in range(BATCH):
        base = np.stack([np.sin(3 * xx + b + k) * np.cos(2 * yy - k) for k in range(c)], axis=-1)
        out.append(0.5 + 0.4 * base + 0.1 * rng.normal(size=(h, w, c)))
    x = np.stack(out).astype(np.float32)
    return x * (255.0 if shape == (10, 10, 3) else 1.0)  # the Rescaling(1/255) net takes pixels


def build(name, out_dir, seed):
    make, major, kind = NETWORKS[name]
    input_shape, net = make()
    rng = np.random.default_rng(seed)
    x = images(input_shape, seed)
    values = {"input": torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2)}
    shapes, ranks, weights = {"input": input_shape}, {"input": 4}, {}
    for cls, lname, inputs, cfg in net:
        ws = make_weights(cls, cfg, shapes[inputs[0]], rng)
        weights[lname] = ws
        y = forward(cls, cfg, [values[i] for i in inputs], ws)
        values[lname] = y
        shapes[lname] = nhwc_shape(y)
        ranks[lname] = y.dim()
    config = model_config(kind, major == 3, input_shape, net, shapes, ranks)
    ext = ".keras" if major == 3 else ".h5"
    path = os.path.join(out_dir, name + ext)
    (write_keras3 if major == 3 else write_keras2)(path, config, net, weights)
    out = values[net[-1][1]]
    out = out.permute(0, 2, 3, 1).reshape(BATCH, -1) if out.dim() == 4 else out
    np.save(os.path.join(out_dir, name + ".input.npy"), x)
    np.save(os.path.join(out_dir, name + ".output.npy"), out.numpy().astype(np.float32))
    top_softmax = net[-1][3].get("activation") == "softmax"
    meta = {"name": name, "file": name + ext, "keras": major, "model": kind,
            "input": list(input_shape), "output_node": net[-1][1],
            "softmax_added": not top_softmax, "classes": int(out.shape[1]),
            "tolerance": 1e-4, "seed": seed}
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"{path}: {len(net)} layers, output {tuple(out.shape)}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "data", "keras"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for i, name in enumerate(NETWORKS):
        build(name, args.out, 300 + i)


if __name__ == "__main__":
    main()
