#!/usr/bin/python3
"""The native e4e against encoder4editing's modules at widths where it runs
Winograd convolutions (tensor/winograd.h; the parity fixture
shared/parity/e4e_small.pt is narrower, so its convolutions stay direct).

A random Encoder4Editing (tests/bench/reference_e4e.py: e4e's modules, eval
mode, BatchNorm statistics and affines randomized so that their folding
counts) is saved as e4e_ffhq_encode.pt is (torch.save of state_dict with
"encoder." keys, latent_avg, opts), inverted with `feu-indexer encode-face`
on random aligned faces, and the W+ must be the reference's within 2e-5 of
the encoder output's largest magnitude: both agree to ~5e-6 here, and the
issue's bound for the released encoder (1e-4) would let a 1e-3 error in one
Winograd transform point through.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--indexer", required=True)
parser.add_argument("--reference", required=True, help="tests/bench/reference_e4e.py")
args = parser.parse_args()

sys.path.insert(0, os.path.dirname(os.path.abspath(args.reference)))  # its forward_protocol module
spec = importlib.util.spec_from_file_location("reference_e4e", args.reference)
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)

# Stages 3–4 at >= 128 channels (Winograd3x3) and the released 18 styles of
# w_dim 512, whose 11 fine blocks' shared first convolution (5,632 outputs)
# runs as StridedWinograd3x3.
WIDTHS, W_DIM, STYLEGAN_SIZE = (32, 64, 128, 512), 512, 1024
torch.manual_seed(5)
model = reference.Encoder4Editing(WIDTHS, W_DIM, STYLEGAN_SIZE).eval()
with torch.no_grad():
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.copy_(1 + 0.1 * torch.randn_like(module.weight))
            module.bias.copy_(0.1 * torch.randn_like(module.bias))
            module.running_mean.copy_(0.1 * torch.randn_like(module.running_mean))
            module.running_var.copy_(1 + 0.1 * torch.rand_like(module.running_var))
latent_avg = torch.randn(model.style_count, W_DIM)

faces = np.random.default_rng(5).integers(0, 256, size=(2, 256, 256, 3), dtype=np.uint8)
with torch.inference_mode():
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float().div(255)
    expected = (model((x - 0.5) / 0.5) + latent_avg).numpy()

with tempfile.TemporaryDirectory() as tmp:
    checkpoint = os.path.join(tmp, "e4e_wide.pt")
    state = {"encoder." + k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    torch.save({"state_dict": state, "latent_avg": latent_avg, "opts": {"encoder_type": "Encoder4Editing"}},
               checkpoint)
    aligned = os.path.join(tmp, "aligned.h5")
    with h5py.File(aligned, "w") as f:
        f["aligned"] = faces
    out = os.path.join(tmp, "wplus.h5")
    subprocess.run([args.indexer, "encode-face", "--e4e", checkpoint, "--aligned", aligned, "--out", out,
                    "--device", "cpu"], check=True)
    with h5py.File(out, "r") as f:
        wplus = f["wplus"][()]

if wplus.shape != expected.shape:
    sys.exit(f"W+ has shape {wplus.shape}, expected {expected.shape}")
# Relative to the encoder's own output (W+ less latent_avg), which is what the
# convolutions compute; latent_avg alone would hide their errors.
encoded = expected - latent_avg.numpy()
error = float(np.abs(wplus - expected).max() / np.abs(encoded).max())
print(f"e4e widths {WIDTHS}, w_dim {W_DIM}, {model.style_count} styles: encoder output relative max error "
      f"{error:.3g} (bound 2e-5; max |encoder output| {np.abs(encoded).max():.3g})")
if not error <= 2e-5:
    sys.exit("the native e4e does not reproduce the reference at Winograd widths")
