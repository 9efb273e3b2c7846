#!/usr/bin/python3
"""Round trips through scripts/convert_stylegan2.py without network access.

A random generator (feu-indexer init-generator) is re-expressed as each input
format the converter reads: a rosinality .pt (inverse of the spec's §7.4 key
map), an NVlabs PyTorch pickle (persistent_class objects as the pickle stores
them) and a TF-era (G, D, Gs) pickle (inverse of §7.2). Each conversion must
give back the original weights bit for bit and render the same image. A
pickle that references os.system must be refused without running it.
"""

import argparse
import collections
import importlib.util
import os
import pickle
import subprocess
import sys
import tempfile
import types

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nvlabs_pickle import write_nvlabs_pickle  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--indexer", required=True)
parser.add_argument("--script", required=True)
args = parser.parse_args()

spec = importlib.util.spec_from_file_location("convert_stylegan2", args.script)
conv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conv)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def read_weights(path):
    with h5py.File(path, "r") as f:
        return collections.OrderedDict((k, f["weights/" + k][()]) for k in f["weights"].keys())


def same_weights(a, b, label):
    check(set(a) == set(b), "%s: key sets differ: %s" % (label, sorted(set(a) ^ set(b))[:5]))
    for k in a:
        if k in b:
            check(a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), "%s: %s differs" % (label, k))


def render(g_path, out_dir, name):
    latents = os.path.join(out_dir, "latents.h5")
    if not os.path.exists(latents):
        with h5py.File(latents, "w") as f:
            f["z"] = np.random.RandomState(0).randn(2, 16).astype(np.float32)
    out = os.path.join(out_dir, name + "_img.h5")
    subprocess.run([args.indexer, "generate", "--generator", g_path, "--latents", latents, "--out", out,
                    "--psi", "0.7", "--device", "cpu"], check=True, stdout=subprocess.DEVNULL)
    with h5py.File(out, "r") as f:
        return f["img"][()]


with tempfile.TemporaryDirectory() as tmp:
    original = os.path.join(tmp, "g.h5")
    subprocess.run([args.indexer, "init-generator", "--out", original, "--resolution", "16", "--z-dim", "16",
                    "--w-dim", "16", "--mapping-layers", "3", "--channel-base", "128", "--channel-max", "16",
                    "--seed", "5"], check=True, stdout=subprocess.DEVNULL)
    W = read_weights(original)
    rng = np.random.RandomState(1)
    # Make the zero-initialized entries nonzero so every mapping rule matters.
    for k in W:
        if k.endswith(("noise_strength", "w_avg")) or (k.endswith(".bias") and "affine" not in k):
            W[k] = np.asarray(rng.randn(*W[k].shape) * 0.1, dtype=np.float32)
    with h5py.File(original, "r+") as f:
        for k in W:
            f["weights/" + k][...] = W[k]
    reference_img = render(original, tmp, "original")
    res = 16

    # --- rosinality .pt ---------------------------------------------------
    T = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    g = collections.OrderedDict()
    for i in range(3):
        g["style.%d.weight" % (i + 1)] = T(W["mapping.fc%d.weight" % i])
        g["style.%d.bias" % (i + 1)] = T(W["mapping.fc%d.bias" % i])
    g["input.input"] = T(W["synthesis.b4.const"][None])

    def ros_conv(q, p, noise):
        g[q + ".conv.weight"] = T(W[p + ".weight"][None])
        g[q + ".conv.modulation.weight"] = T(W[p + ".affine.weight"])
        g[q + ".conv.modulation.bias"] = T(W[p + ".affine.bias"])
        g[q + ".noise.weight"] = T(W[p + ".noise_strength"].reshape(1))
        g[q + ".activate.bias"] = T(W[p + ".bias"])
        g["noises." + noise] = T(W[p + ".noise_const"][None, None])

    def ros_rgb(q, p):
        g[q + ".conv.weight"] = T(W[p + ".weight"][None])
        g[q + ".conv.modulation.weight"] = T(W[p + ".affine.weight"])
        g[q + ".conv.modulation.bias"] = T(W[p + ".affine.bias"])
        g[q + ".bias"] = T(W[p + ".bias"].reshape(1, -1, 1, 1))

    ros_conv("conv1", "synthesis.b4.conv1", "noise_0")
    ros_rgb("to_rgb1", "synthesis.b4.torgb")
    for j, r in enumerate([8, 16]):
        ros_conv("convs.%d" % (2 * j), "synthesis.b%d.conv0" % r, "noise_%d" % (2 * j + 1))
        ros_conv("convs.%d" % (2 * j + 1), "synthesis.b%d.conv1" % r, "noise_%d" % (2 * j + 2))
        ros_rgb("to_rgbs.%d" % j, "synthesis.b%d.torgb" % r)
        g["to_rgbs.%d.upsample.kernel" % j] = T(conv.resample_filter() * 4)
        g["convs.%d.conv.blur.kernel" % (2 * j)] = T(conv.resample_filter() * 4)
    pt = os.path.join(tmp, "ros.pt")
    torch.save({"g_ema": g, "latent_avg": T(W["mapping.w_avg"])}, pt)
    try:
        out = os.path.join(tmp, "ros.h5")
        conv.convert(pt, out)
        same_weights(W, read_weights(out), "rosinality")
        check(np.array_equal(render(out, tmp, "ros"), reference_img), "rosinality: image differs")
    except conv.ConvertError as e:
        check(False, "rosinality conversion failed: %s" % e)

    # --- NVlabs PyTorch pickle ---------------------------------------------
    pkl = os.path.join(tmp, "network-snapshot.pkl")
    write_nvlabs_pickle(W, dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                                mapping_kwargs=dict(num_layers=3), synthesis_kwargs=dict()), pkl)
    try:
        out = os.path.join(tmp, "pkl.h5")
        conv.convert(pkl, out)
        same_weights(W, read_weights(out), "nvlabs pkl")
        # The same snapshot named .pt is still an NVlabs pickle (the format comes from the content).
        renamed = os.path.join(tmp, "snapshot.pt")
        with open(pkl, "rb") as src, open(renamed, "wb") as dst:
            dst.write(src.read())
        conv.convert(renamed, os.path.join(tmp, "renamed.h5"))
        same_weights(W, read_weights(os.path.join(tmp, "renamed.h5")), "nvlabs pkl named .pt")
        check(np.array_equal(render(out, tmp, "pkl"), reference_img), "nvlabs pkl: image differs")
    except conv.ConvertError as e:
        check(False, "nvlabs pickle conversion failed: %s" % e)

    # --- TF-era pickle ---------------------------------------------------------
    tfnet = types.ModuleType("dnnlib.tflib.network")

    class Network:
        def __init__(self, name, variables, components, static_kwargs=None):
            self.s = dict(version=4, name=name, static_kwargs=static_kwargs or {}, components=components,
                          build_module_src="raise SystemExit", build_func_name="G_main", variables=variables)

        def __getstate__(self):
            return self.s

    Network.__module__ = "dnnlib.tflib.network"
    Network.__qualname__ = "Network"
    tfnet.Network = Network
    sys.modules["dnnlib"] = types.ModuleType("dnnlib")
    sys.modules["dnnlib.tflib"] = types.ModuleType("dnnlib.tflib")
    sys.modules["dnnlib.tflib.network"] = tfnet

    def tf_conv(w, flip=False):  # [out, in, kh, kw] -> TF [kh, kw, in, out]
        t = w.transpose(2, 3, 1, 0)
        return np.ascontiguousarray(t[::-1, ::-1] if flip else t)

    mapping_vars = []
    for i in range(3):
        mapping_vars += [("Dense%d/weight" % i, np.ascontiguousarray(W["mapping.fc%d.weight" % i].T)),
                         ("Dense%d/bias" % i, W["mapping.fc%d.bias" % i])]
    synth_vars = [("4x4/Const/const", W["synthesis.b4.const"][None])]

    def tf_layer(t, p, noise_index, flip=False):
        synth_vars.extend([(t + "/weight", tf_conv(W[p + ".weight"], flip)),
                           (t + "/mod_weight", np.ascontiguousarray(W[p + ".affine.weight"].T)),
                           (t + "/mod_bias", W[p + ".affine.bias"] - 1),
                           (t + "/noise_strength", W[p + ".noise_strength"]),
                           (t + "/bias", W[p + ".bias"])])
        synth_vars.append(("noise%d" % noise_index, W[p + ".noise_const"][None, None]))

    def tf_rgb(t, p):
        synth_vars.extend([(t + "/weight", tf_conv(W[p + ".weight"])),
                           (t + "/mod_weight", np.ascontiguousarray(W[p + ".affine.weight"].T)),
                           (t + "/mod_bias", W[p + ".affine.bias"] - 1), (t + "/bias", W[p + ".bias"])])

    tf_layer("4x4/Conv", "synthesis.b4.conv1", 0)
    tf_rgb("4x4/ToRGB", "synthesis.b4.torgb")
    for r, k in [(8, 3), (16, 4)]:
        tf_layer("%dx%d/Conv0_up" % (r, r), "synthesis.b%d.conv0" % r, 2 * k - 5, flip=True)
        tf_layer("%dx%d/Conv1" % (r, r), "synthesis.b%d.conv1" % r, 2 * k - 4)
        tf_rgb("%dx%d/ToRGB" % (r, r), "synthesis.b%d.torgb" % r)
    gs = Network("G", [("dlatent_avg", W["mapping.w_avg"])],
                 dict(mapping=Network("G_mapping", mapping_vars, {}),
                      synthesis=Network("G_synthesis", synth_vars, {})),
                 dict(mapping_lrmul=0.01))
    tfpkl = os.path.join(tmp, "tf.pkl")
    with open(tfpkl, "wb") as f:
        pickle.dump((Network("G", [], {}), Network("D", [], {}), gs), f)
    try:
        out = os.path.join(tmp, "tf.h5")
        conv.convert(tfpkl, out)
        same_weights(W, read_weights(out), "tf pkl")
        check(np.array_equal(render(out, tmp, "tf"), reference_img), "tf pkl: image differs")
    except conv.ConvertError as e:
        check(False, "tf pickle conversion failed: %s" % e)

    # --- a pickle that would run code ---------------------------------------
    marker = os.path.join(tmp, "pwned")

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + marker,))

    evil = os.path.join(tmp, "evil.pkl")
    with open(evil, "wb") as f:
        pickle.dump({"G_ema": Evil()}, f)
    result = subprocess.run([sys.executable, args.script, evil, "--out", os.path.join(tmp, "evil.h5")],
                            capture_output=True, text=True)
    check(result.returncode != 0, "evil pickle: converter exited 0")
    check("refusing to load global" in result.stderr, "evil pickle: no clear error: %r" % result.stderr)
    check(not os.path.exists(marker), "evil pickle: pickled code ran")
    check(not os.path.exists(os.path.join(tmp, "evil.h5")), "evil pickle: output written")
    check(not any(".tmp-" in n for n in os.listdir(tmp)), "temporary file left behind")

    # --- the documented command line, and its clean errors -------------------
    result = subprocess.run([args.script, pt, "--out", os.path.join(tmp, "cli.h5")], capture_output=True, text=True)
    check(result.returncode == 0 and os.path.exists(os.path.join(tmp, "cli.h5")),
          "the README's command (script run by its shebang) failed: %r" % result.stderr)
    result = subprocess.run([args.script, pt, "--out", os.path.join(tmp, "no", "such", "dir", "g.h5")],
                            capture_output=True, text=True)
    check(result.returncode == 2 and "Traceback" not in result.stderr and "does not exist" in result.stderr,
          "missing output directory: no clean error: %r" % result.stderr)
    result = subprocess.run([args.script, pkl, "--format", "rosinality", "--out", os.path.join(tmp, "x.h5")],
                            capture_output=True, text=True)
    check(result.returncode == 2 and "--format pkl" in result.stderr and "--trust-checkpoint" not in result.stderr,
          "a pickle given as rosinality: the error must point to --format pkl: %r" % result.stderr)

print("convert_stylegan2 round trips: %s" % ("FAILED (%d)" % len(failures) if failures else "ok"))
sys.exit(1 if failures else 0)
