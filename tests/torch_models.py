"""Models built with torch inside the tests and exported to ONNX into a temporary folder (torch is in the
export extra; every user calls pytest.importorskip("torch") first): a tiny ViT trained for a few steps
on pictures whose class is decided by one known region, and torchvision / HF exports with random weights.
"""

from __future__ import annotations

import numpy as np

REGION = (8, 24, 16, 32)  # rows y0:y1, columns x0:x1 of the 32x32 picture (a 2x2 block of 8x8 patches)
SIZE, PATCH = 32, 8


def region_pictures(n: int, seed: int = 0):
    """(pictures (n, 32, 32, 3) float32 in 0..1, labels (n,)): noise with one bright 8x8 square somewhere
    outside the region in every picture (a distractor), and the region brightened in class 1 only."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.6, (n, SIZE, SIZE, 3)).astype(np.float32)
    y = rng.integers(0, 2, n)
    y0, y1, x0, x1 = REGION
    cells = [(r, c) for r in range(0, SIZE, PATCH) for c in range(0, SIZE, PATCH)
             if not (y0 <= r < y1 and x0 <= c < x1)]
    for i in range(n):
        r, c = cells[rng.integers(len(cells))]
        x[i, r:r + PATCH, c:c + PATCH] += 0.4
        if y[i]:
            x[i, y0:y1, x0:x1] += 0.4
    return x, y


def tiny_vit(dim: int = 32, depth: int = 2, heads: int = 2, classes: int = 2):
    """A ViT with a class token, pre-norm blocks written out (attention by hand: it exports the same with
    every exporter), a final LayerNorm and a linear head on the class token, as HF's ViT."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.qkv(self.n1(x)).reshape(b, t, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
            a = torch.softmax(q @ k.transpose(-2, -1) / (c // heads) ** 0.5, dim=-1)
            x = x + self.proj((a @ v).transpose(1, 2).reshape(b, t, c))
            return x + self.mlp(self.n2(x))

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            g = SIZE // PATCH
            self.patch = nn.Conv2d(3, dim, PATCH, PATCH)
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.randn(1, g * g + 1, dim) * 0.02)
            self.blocks = nn.Sequential(*[Block() for _ in range(depth)])
            self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], dim=1) + self.pos
            return self.head(self.norm(self.blocks(t))[:, 0])

    return ViT()


def train_region_vit(path, steps: int = 150, seed: int = 0):
    """Train tiny_vit on region_pictures for ``steps`` Adam steps, export it (NCHW input, pictures in
    0..1) to ``path``; returns the accuracy on 256 held-out pictures."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    model = tiny_vit()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = region_pictures(64 * steps, seed)
    X, Y = torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y)
    for s in range(steps):
        sl = slice(64 * s, 64 * (s + 1))
        loss = torch.nn.functional.cross_entropy(model(X[sl]), Y[sl])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt = region_pictures(256, seed + 1)
    with torch.no_grad():
        acc = float((model(torch.from_numpy(xt).permute(0, 3, 1, 2)).argmax(1).numpy() == yt).mean())
        export(model, path, torch.zeros(1, 3, SIZE, SIZE))
    return acc


def export(model, path, example, dynamo: bool = False):
    """torch.onnx.export with a dynamic batch axis, quietly."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False)
        else:
            torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
                              opset_version=17)
    return path


def torchvision_onnx(arch: str, path, size: int = 64, classes: int = 10):
    """torchvision ``arch`` (squeezenet1_1, mobilenet_v3_small) with random weights, exported at size x size."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=classes).eval()
    return export(model, path, torch.zeros(1, 3, size, size))


def hf_vit_onnx(path, size: int = 32, classes: int = 5, distilled: bool = False):
    """HuggingFace ViT (or DeiT with its distillation token) from a random tiny config, exported with
    torch.onnx (TorchScript); needs transformers."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    kw = dict(image_size=size, patch_size=8, num_channels=3, hidden_size=16, num_hidden_layers=2,
              num_attention_heads=2, intermediate_size=32, num_labels=classes)
    if distilled:
        inner = tf.DeiTForImageClassificationWithTeacher(tf.DeiTConfig(**kw)).eval()
    else:
        inner = tf.ViTForImageClassification(tf.ViTConfig(**kw)).eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(pixel_values=x).logits

    return export(Logits(), path, torch.zeros(1, 3, size, size))
