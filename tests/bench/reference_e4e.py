#!/usr/bin/python3
"""encoder4editing's Encoder4Editing (models/encoders/psp_encoders.py over the
IR-SE50 units of models/encoders/helpers.py, with rosinality's EqualLinear),
built from stock torch.nn modules at the released widths (64/128/256/512,
w_dim 512, 18 styles: 267 M parameters), eval mode, timed on CPU with random
weights: the reference side of bench_face's BM_E4E.

    /usr/bin/python3 tests/bench/reference_e4e.py [--batch 1 8] [--threads 2] [--runs 5]

Prints the median ms per image of --runs timed forwards (after a warm-up) for
each batch size. With --serve it prints "ready", then runs one forward of the
first batch size per line read from stdin and prints its wall time in ms: the
protocol of build/bin/model_forwards, for tests/bench/compare_forwards.py. With --check E4E.pt FIXTURE.h5 it first loads the parity
fixture's small checkpoint (shared/parity/e4e_small.pt) and reproduces its W+,
so the timed network is known to be e4e's.
"""
import argparse
import math
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

from forward_protocol import serve

UNITS_PER_STAGE = (3, 4, 14, 3)
TAPS = {6: "c1", 20: "c2", 23: "c3"}
COARSE_END, MIDDLE_END = 3, 7


class SEModule(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


class BottleneckIRSE(nn.Module):
    def __init__(self, in_channel, depth, stride):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False),
                                                nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(nn.BatchNorm2d(in_channel),
                                       nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
                                       nn.PReLU(depth),
                                       nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
                                       nn.BatchNorm2d(depth),
                                       SEModule(depth, 16))

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class EqualLinear(nn.Module):
    """rosinality's EqualLinear without activation: weight·(lr_mul/√in), bias·lr_mul."""

    def __init__(self, in_dim, out_dim, lr_mul=1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class GradualStyleBlock(nn.Module):
    def __init__(self, in_c, out_c, spatial):
        super().__init__()
        self.out_c = out_c
        layers = []
        for i in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(in_c if i == 0 else out_c, out_c, kernel_size=3, stride=2, padding=1),
                       nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)

    def forward(self, x):
        return self.linear(self.convs(x).view(-1, self.out_c))


def upsample_add(x, y):
    return F.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=True) + y


class Encoder4Editing(nn.Module):
    def __init__(self, widths=(64, 128, 256, 512), w_dim=512, stylegan_size=1024):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, widths[0], (3, 3), 1, 1, bias=False),
                                         nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0]))
        units, in_channel = [], widths[0]
        for depth, count in zip(widths, UNITS_PER_STAGE):
            for u in range(count):
                units.append(BottleneckIRSE(in_channel, depth, 2 if u == 0 else 1))
                in_channel = depth
        self.body = nn.Sequential(*units)
        self.style_count = 2 * int(math.log(stylegan_size, 2)) - 2
        self.styles = nn.ModuleList(
            GradualStyleBlock(widths[3] if i < COARSE_END else w_dim, w_dim,
                              16 if i < COARSE_END else 32 if i < MIDDLE_END else 64)
            for i in range(self.style_count))
        self.latlayer1 = nn.Conv2d(widths[2], w_dim, kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(widths[1], w_dim, kernel_size=1, stride=1, padding=0)

    def forward(self, x):
        x = self.input_layer(x)
        taps = {}
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in TAPS:
                taps[TAPS[i]] = x
        # Progressive stage Inference: w0 repeated, then a delta per further style.
        w0 = self.styles[0](taps["c3"])
        w = w0.repeat(self.style_count, 1, 1).permute(1, 0, 2)
        features = taps["c3"]
        for i in range(1, self.style_count):
            if i == COARSE_END:
                p2 = upsample_add(taps["c3"], self.latlayer1(taps["c2"]))
                features = p2
            elif i == MIDDLE_END:
                features = upsample_add(p2, self.latlayer2(taps["c1"]))
            w[:, i] += self.styles[i](features)
        return w


def check_against_fixture(checkpoint_path, fixture_path):
    import h5py

    checkpoint = torch.load(checkpoint_path, map_location="cpu")
    state = {k[len("encoder."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("encoder.")}
    widths = tuple(state[f"body.{u}.res_layer.1.weight"].shape[0] for u in (0, 3, 7, 21))
    w_dim = state["styles.0.linear.weight"].shape[0]
    n_styles = sum(1 for k in state if k.endswith(".linear.weight"))
    model = Encoder4Editing(widths, w_dim, stylegan_size=2 ** ((n_styles + 2) // 2)).eval()
    model.load_state_dict(state)
    with h5py.File(fixture_path, "r") as fixture:
        inputs = torch.from_numpy(fixture["input"][()])
        expected = torch.from_numpy(fixture["wplus"][()])
    with torch.inference_mode():
        wplus = model(inputs) + checkpoint["latent_avg"].float()
    error = ((wplus - expected).abs().max() / expected.abs().max()).item()
    print(f"check: {checkpoint_path} widths {widths}, w_dim {w_dim}, {n_styles} styles: "
          f"W+ relative max error {error:.3g}")
    if error > 1e-4:
        raise SystemExit("the re-expressed e4e does not reproduce the fixture")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="timed forwards per batch size (median reported)")
    parser.add_argument("--check", nargs=2, metavar=("E4E_PT", "FIXTURE_H5"))
    parser.add_argument("--serve", action="store_true", help="one timed forward per stdin line")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.check:
        check_against_fixture(*args.check)
    torch.manual_seed(0)
    model = Encoder4Editing().eval()
    params = sum(p.numel() for p in model.parameters())
    if args.serve:
        images = torch.randn(args.batch[0], 3, 256, 256)
        with torch.inference_mode():
            serve(lambda: model(images))
        return
    for batch in args.batch:
        images = torch.randn(batch, 3, 256, 256)
        times, cpu_times = [], []
        with torch.inference_mode():
            model(images)  # warm-up
            for _ in range(args.runs):
                start, cpu_start = time.perf_counter(), time.process_time()
                model(images)
                times.append((time.perf_counter() - start) / batch)
                cpu_times.append((time.process_time() - cpu_start) / batch)
        # CPU time (all threads) reads steadier than wall time on a shared machine.
        print(f"reference e4e ({params / 1e6:.1f} M parameters), torch {torch.__version__}, batch {batch}, "
              f"{args.threads} threads: {1000 * statistics.median(times):.1f} ms per image "
              f"(median of {args.runs}; min {1000 * min(times):.1f}; CPU {1000 * statistics.median(cpu_times):.1f})",
              flush=True)


if __name__ == "__main__":
    main()
