#!/usr/bin/env python3
"""Writes tests/data/kernels/torch.txt: PyTorch's values and gradients for the kernel
semantics that are easy to get subtly wrong, for tests/core/test_kernels_torch.c.

- average pooling with ceil_mode, padding and count_include_pad (the last window can
  run past the padded input; PyTorch divides by the part inside it), and without;
- max pooling with ceil_mode, padding and dilation, with ties (the first maximum
  takes the gradient);
- ceil_mode's rule that drops a last window starting in the end padding;
- asymmetric padding, as an explicit F.pad (-inf for max, 0 for average) in front of
  an unpadded pool, on geometries where that gives the same output size;
- activations: values and gradients, at their kinks and in their tails.

Tensors are written in NHWC order, float32 with 9 significant digits. Run by hand from
the project root with a Python that has PyTorch:
    python3 tests/kernels/make_fixture.py
"""
import os

import torch
import torch.nn.functional as F

OUT = os.path.join("tests", "data", "kernels", "torch.txt")


def floats(t):
    return " ".join("%.9g" % v for v in t.detach().reshape(-1).tolist())


def out_size(n, k, s, pb, pe, ceil):
    """cs_pool2d_out_size, to confirm the explicit-padding cases agree with it."""
    span = n + pb + pe - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + pb:
        out -= 1
    return out


def pool_case(lines, name, kind, n, ih, iw, c, kh, kw, sh, sw, pt, pl, pb, pr, ceil, cip, ties, gen, dh=1, dw=1):
    if ties:
        x = torch.randint(0, 4, (n, ih, iw, c), generator=gen).float()
    else:
        x = torch.randn(n, ih, iw, c, generator=gen)
    x.requires_grad_(True)
    xc = x.permute(0, 3, 1, 2)  # NCHW for PyTorch
    if pt == pb and pl == pr:
        if kind == "max":
            y = F.max_pool2d(xc, (kh, kw), (sh, sw), (pt, pl), dilation=(dh, dw), ceil_mode=bool(ceil))
        else:
            assert dh == 1 and dw == 1  # PyTorch's average pool has no dilation
            y = F.avg_pool2d(xc, (kh, kw), (sh, sw), (pt, pl), ceil_mode=bool(ceil), count_include_pad=bool(cip))
    else:
        # Explicit padding: exact for max (-inf never wins) and for average counting
        # the padding (the zeros add nothing, the divisor is clipped to the same bounds).
        assert (kind == "max" or cip) and dh == 1 and dw == 1
        xp = F.pad(xc, (pl, pr, pt, pb), value=float("-inf") if kind == "max" else 0.0)
        if kind == "max":
            y = F.max_pool2d(xp, (kh, kw), (sh, sw), 0, ceil_mode=bool(ceil))
        else:
            y = F.avg_pool2d(xp, (kh, kw), (sh, sw), 0, ceil_mode=bool(ceil), count_include_pad=True)
    oh, ow = y.shape[2], y.shape[3]
    extent_h, extent_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    assert (oh, ow) == (out_size(ih, extent_h, sh, pt, pb, ceil), out_size(iw, extent_w, sw, pl, pr, ceil)), name
    dy = torch.randn(y.shape, generator=gen)
    y.backward(dy)
    lines += [
        "case pool %s" % name,
        "kind %s" % kind,
        "geom %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d"
        % (n, ih, iw, c, kh, kw, sh, sw, pt, pl, pb, pr, ceil, cip, dh, dw),
        "out %d %d" % (oh, ow),
        "x " + floats(x),
        "y " + floats(y.permute(0, 2, 3, 1)),
        "dy " + floats(dy.permute(0, 2, 3, 1)),
        "dx " + floats(x.grad),
        "end",
    ]


ACTIVATIONS = [
    # name in the test, kind, a, b, PyTorch function
    ("relu", "relu", 0, 0, F.relu),
    ("relu6", "clip", 0, 6, F.relu6),
    ("hardtanh", "clip", -1, 1, lambda x: F.hardtanh(x, -1.0, 1.0)),
    ("leaky", "leaky", 0.1, 0, lambda x: F.leaky_relu(x, 0.1)),
    ("elu", "elu", 0.7, 0, lambda x: F.elu(x, 0.7)),
    ("sigmoid", "sigmoid", 0, 0, torch.sigmoid),
    ("tanh", "tanh", 0, 0, torch.tanh),
    ("silu", "swish", 0, 0, F.silu),
    ("hardsigmoid", "hard_sigmoid", 1 / 6, 0.5, F.hardsigmoid),
    ("hardswish", "hard_swish", 0, 0, F.hardswish),
    ("gelu", "gelu", 0, 0, F.gelu),
    ("gelu_tanh", "gelu_tanh", 0, 0, lambda x: F.gelu(x, approximate="tanh")),
    ("softplus", "softplus", 0, 0, F.softplus),
]

SPECIAL = [-90, -30, -20, -12, -8, -4, -3, -2.5, -1, -0.5, 0, 0.5, 1, 2.5, 3, 4, 6, 7, 8, 12, 20, 30, 90]


def act_case(lines, name, kind, a, b, fn, gen):
    special = SPECIAL
    if name == "hardswish":
        # At exactly -3 and 3 this PyTorch's gradient depends on the code path (vector
        # or scalar); later versions settled on 0 and 1, which the kernels follow and
        # test_kernels_elem.c checks by hand. Here: the points on either side.
        special = [v for v in SPECIAL if abs(v) != 3] + [-3.001, -2.999, 2.999, 3.001]
    x = torch.cat([torch.tensor(special, dtype=torch.float32), 3 * torch.randn(40, generator=gen)])
    x.requires_grad_(True)
    y = fn(x)
    dy = torch.randn(y.shape, generator=gen)
    y.backward(dy)
    lines += [
        "case act %s" % name,
        "kind %s %.9g %.9g" % (kind, a, b),
        "x " + floats(x),
        "y " + floats(y),
        "dy " + floats(dy),
        "dx " + floats(x.grad),
        "end",
    ]


def main():
    gen = torch.Generator().manual_seed(20261201)
    lines = ["convscope-kernels-fixture 1", "# written by tests/kernels/make_fixture.py with PyTorch " + torch.__version__]
    P = pool_case
    # name kind n ih iw c kh kw sh sw pt pl pb pr ceil cip ties
    P(lines, "avg_ceil_pad_incl", "avg", 2, 6, 6, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, gen)
    P(lines, "avg_ceil_pad_excl", "avg", 2, 6, 6, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 0, gen)
    P(lines, "avg_ceil_pad_incl_5x7", "avg", 1, 5, 7, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, gen)
    P(lines, "avg_ceil_drop_incl", "avg", 1, 5, 5, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, gen)
    P(lines, "avg_ceil_nopad_incl", "avg", 1, 5, 5, 2, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 0, gen)
    P(lines, "avg_ceil_k3s3_incl", "avg", 1, 7, 8, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 0, gen)
    P(lines, "avg_floor_pad_excl", "avg", 2, 7, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, gen)
    P(lines, "avg_asym_ceil_incl", "avg", 1, 6, 5, 2, 3, 3, 2, 2, 1, 0, 0, 1, 1, 1, 0, gen)
    P(lines, "max_ceil_pad", "max", 2, 6, 6, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 0, gen)
    P(lines, "max_ceil_pad_ties", "max", 2, 6, 6, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 1, gen)
    P(lines, "max_ceil_drop", "max", 1, 5, 5, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0, gen)
    P(lines, "max_floor_resnet_ties", "max", 1, 7, 9, 2, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, 1, gen)
    P(lines, "max_overlap_ties", "max", 1, 5, 6, 2, 3, 2, 1, 1, 0, 0, 0, 0, 1, 0, 1, gen)
    P(lines, "max_asym_ceil", "max", 1, 6, 5, 2, 3, 3, 2, 2, 1, 0, 0, 1, 1, 0, 0, gen)
    P(lines, "max_dilated_ceil_pad", "max", 2, 9, 8, 2, 3, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0, gen, 2, 3)
    P(lines, "max_dilated_ties", "max", 1, 7, 7, 3, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0, 1, gen, 2, 2)
    for name, kind, a, b, fn in ACTIVATIONS:
        act_case(lines, name, kind, a, b, fn, gen)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
