#!/usr/bin/python3
"""OpenAI CLIP's ViT-B/32 image tower, as clip/model.py builds it
(VisionTransformer: patch conv, class token, ln_pre, 12 ResidualAttentionBlocks
with nn.MultiheadAttention and QuickGELU, ln_post, proj), timed on CPU with
random weights: the reference side of bench_clip's BM_ImageEncoder. With
--serve it prints "ready", then runs one forward per line read from stdin and
prints its wall time in ms: the protocol of build/bin/model_forwards, for
tests/bench/compare_forwards.py --model clip_image.

    /usr/bin/python3 tests/bench/reference_clip_image.py [--batch 8] [--threads 2] [--serve]
"""
import argparse
import time
from collections import OrderedDict

import torch
from torch import nn

from forward_protocol import serve


class LayerNorm(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.type(torch.float32)).type(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d_model, n_head):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d_model, d_model * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(d_model * 4, d_model))]))
        self.ln_2 = LayerNorm(d_model)

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    def __init__(self, resolution=224, patch=32, width=768, layers=12, heads=12, output_dim=512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((resolution // patch) ** 2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)  # NLD -> LND
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve", action="store_true", help="one timed forward per stdin line")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = VisionTransformer().eval()
    pixels = torch.randn(args.batch, 3, 224, 224)
    with torch.no_grad():
        if args.serve:
            serve(lambda: model(pixels))
            return
        model(pixels)  # warm-up
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            model(pixels)
            runs += 1
        elapsed = time.perf_counter() - start
    print(f"reference ViT-B/32 image tower, torch {torch.__version__}, batch {args.batch}, {args.threads} threads: "
          f"{1000 * elapsed / (runs * args.batch):.1f} ms per image ({runs} runs)")


if __name__ == "__main__":
    main()
