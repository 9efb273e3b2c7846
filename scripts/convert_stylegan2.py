#!/usr/bin/python3
"""Convert StyleGAN2 generator weights to feu's HDF5 layout.

Inputs:
  * NVlabs stylegan2-ada-pytorch / stylegan3 pickles (network-snapshot-*.pkl,
    the NGC stylegan2-*.pkl): read with a restricted unpickler that never runs
    the source code embedded in the pickle and refuses every global outside
    torch, numpy, collections and a few builtins.
  * NVlabs TF-era pickles (stylegan2 / stylegan2-ada TF): same unpickler, with
    the TF Network class replaced by a stub; no TensorFlow needed.
  * rosinality stylegan2-pytorch checkpoints (.pt with `g_ema`).

Output: one float32 dataset per NVlabs `G.state_dict()` key under `weights/`,
architecture in root attributes (shared/parity/stylegan2_64.h5 layout). The
file is written to a temporary name, re-read and checked against the source
state, then renamed into place.

Needs only Debian's python3-torch, python3-numpy and python3-h5py: run it as
`scripts/convert_stylegan2.py` (its shebang is Debian's /usr/bin/python3) or
`/usr/bin/python3 scripts/convert_stylegan2.py`; another python3 on PATH (pyenv,
conda) usually lacks h5py or torch.
Usage: convert_stylegan2.py INPUT --out G.h5 [--format auto|pkl|rosinality]
"""

import argparse
import collections
import hashlib
import io
import json
import math
import os
import pickle
import sys

import h5py
import numpy as np
import torch


class ConvertError(Exception):
    pass


# ---------------------------------------------------------------------------
# Architecture and the expected key list (mirrors common/stylegan2/style_space.cpp)

def channels_at(cfg, res):
    return min(cfg["channel_base"] // res, cfg["channel_max"])


def expected_shapes(cfg):
    """Every NVlabs state-dict key and shape, in state_dict order."""
    out = collections.OrderedDict()
    w_dim = cfg["w_dim"]

    def layer(p, cin, cout, res):
        out[p + ".weight"] = (cout, cin, 3, 3)
        out[p + ".noise_strength"] = ()
        out[p + ".bias"] = (cout,)
        out[p + ".resample_filter"] = (4, 4)
        out[p + ".noise_const"] = (res, res)
        out[p + ".affine.weight"] = (cin, w_dim)
        out[p + ".affine.bias"] = (cin,)

    def torgb(p, cin):
        out[p + ".weight"] = (cfg["img_channels"], cin, 1, 1)
        out[p + ".bias"] = (cfg["img_channels"],)
        out[p + ".affine.weight"] = (cin, w_dim)
        out[p + ".affine.bias"] = (cin,)

    res = 4
    while res <= cfg["img_resolution"]:
        b = "synthesis.b%d" % res
        ch = channels_at(cfg, res)
        if res == 4:
            out[b + ".const"] = (ch, 4, 4)
        out[b + ".resample_filter"] = (4, 4)
        if res > 4:
            layer(b + ".conv0", channels_at(cfg, res // 2), ch, res)
        layer(b + ".conv1", ch, ch, res)
        torgb(b + ".torgb", ch)
        res *= 2
    out["mapping.w_avg"] = (w_dim,)
    for i in range(cfg["mapping_num_layers"]):
        out["mapping.fc%d.weight" % i] = (w_dim, cfg["z_dim"] if i == 0 else w_dim)
        out["mapping.fc%d.bias" % i] = (w_dim,)
    return out


def resample_filter():
    f = np.array([1, 3, 3, 1], dtype=np.float32)
    f = np.outer(f, f)
    return (f / f.sum()).astype(np.float32)


def infer_config(state, lr_multiplier, conv_clamp, source):
    """Architecture from the tensors themselves (never assume config-f)."""
    res = 4
    while ("synthesis.b%d.torgb.weight" % (res * 2)) in state:
        res *= 2
    channels = {}
    r = 4
    while r <= res:
        channels[r] = int(state["synthesis.b%d.conv1.weight" % r].shape[0])
        r *= 2
    channel_max = max(channels.values())
    below = [r for r, c in channels.items() if c < channel_max]
    channel_base = channels[min(below)] * min(below) if below else channel_max * res
    cfg = {
        "z_dim": int(state["mapping.fc0.weight"].shape[1]),
        "w_dim": int(state["mapping.fc0.weight"].shape[0]),
        "c_dim": 0,
        "img_resolution": res,
        "img_channels": int(state["synthesis.b4.torgb.weight"].shape[0]),
        "mapping_num_layers": sum(1 for k in state if k.startswith("mapping.fc") and k.endswith(".weight")),
        "channel_base": channel_base,
        "channel_max": channel_max,
        "num_fp16_res": 0,
        "conv_clamp": conv_clamp,
        "architecture": "skip",
        "lr_multiplier": float(lr_multiplier),
    }
    for r, c in channels.items():
        if channels_at(cfg, r) != c:
            raise ConvertError("%s: channel counts %s do not follow min(base / res, max)" % (source, channels))
    return cfg


# ---------------------------------------------------------------------------
# Restricted unpickling

class PersistentStub:
    """Stands in for an NVlabs persistent_class object: keeps its pickled state."""

    def __init__(self, meta):
        self.class_name = meta.get("class_name")
        self.state = meta.get("state") or {}


def _reconstruct_persistent_obj(meta):
    return PersistentStub(meta)


class EasyDict(dict):
    pass


class TFNetworkStub:
    """Stands in for dnnlib.tflib.network.Network (TF-era pickles)."""

    def __setstate__(self, state):
        self.state = state


def _load_storage_from_bytes(data):
    # torch.storage._load_from_bytes would run a full torch.load on embedded
    # bytes; weights_only keeps that restricted too.
    return torch.load(io.BytesIO(data), weights_only=True)


_ALLOWED_TORCH = {
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "FloatStorage"), ("torch", "HalfStorage"), ("torch", "DoubleStorage"),
    ("torch", "LongStorage"), ("torch", "IntStorage"), ("torch", "ByteStorage"), ("torch", "BoolStorage"),
    ("torch", "float32"), ("torch", "float16"), ("torch", "Size"), ("torch", "device"),
}
_ALLOWED = {
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"), ("builtins", "complex"),
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    # numpy 2 renamed numpy.core to numpy._core: the pickles it writes name the new module.
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return _reconstruct_persistent_obj
        if (module, name) == ("dnnlib.util", "EasyDict"):
            return EasyDict
        if (module, name) == ("dnnlib.tflib.network", "Network"):
            return TFNetworkStub
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _load_storage_from_bytes
        if (module, name) in _ALLOWED or (module, name) in _ALLOWED_TORCH:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            "refusing to load global %s.%s (only tensors, arrays and NVlabs network state are allowed)"
            % (module, name))


def load_pickle(path):
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f).load()
        except pickle.UnpicklingError as e:
            raise ConvertError("%s: %s" % (path, e))
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, ImportError) as e:
            raise ConvertError("%s: not a readable pickle (%s)" % (path, e))


def to_numpy(t):
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().float().numpy()
    return np.asarray(t, dtype=np.float32)


def walk_module(stub, prefix, out):
    """Rebuilds dotted state-dict keys from a pickled nn.Module __dict__."""
    state = stub.state if isinstance(stub, PersistentStub) else getattr(stub, "__dict__", {})
    skip = set(state.get("_non_persistent_buffers_set", ()) or ())
    for name, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + name] = to_numpy(value)
    for name, value in (state.get("_buffers") or {}).items():
        if value is not None and name not in skip:
            out[prefix + name] = to_numpy(value)
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            walk_module(child, prefix + name + ".", out)


def find_attr(stub, name):
    """First value of a per-module attribute anywhere in the module tree."""
    if isinstance(stub, PersistentStub):
        if name in stub.state:
            return stub.state[name]
        for child in (stub.state.get("_modules") or {}).values():
            found = find_attr(child, name)
            if found is not None:
                return found
    return None


def convert_nvlabs_pickle(data, path):
    g = data.get("G_ema") if isinstance(data, dict) else None
    if not isinstance(g, PersistentStub):
        raise ConvertError("%s: no G_ema network in the pickle" % path)
    state = collections.OrderedDict()
    walk_module(g, "", state)
    kwargs = dict(g.state.get("_init_kwargs") or {})
    if int(kwargs.get("c_dim", 0) or 0) != 0:
        raise ConvertError("%s: conditional generators (c_dim=%s) are not supported" % (path, kwargs["c_dim"]))
    mapping = (g.state.get("_modules") or {}).get("mapping")
    fc0 = ((mapping.state.get("_modules") or {}).get("fc0")) if isinstance(mapping, PersistentStub) else None
    # The effective per-module values beat init_kwargs (sg3 pickles omit defaults).
    lr = fc0.state.get("bias_gain") if isinstance(fc0, PersistentStub) else None
    if lr is None:
        lr = (kwargs.get("mapping_kwargs") or {}).get("lr_multiplier", 0.01)
    clamp = find_attr((g.state.get("_modules") or {}).get("synthesis"), "conv_clamp")
    for block in ((g.state.get("_modules") or {}).get("synthesis").state.get("_modules") or {}).values():
        if isinstance(block, PersistentStub) and block.state.get("architecture", "skip") != "skip":
            raise ConvertError("%s: architecture %r is not supported (expected 'skip')"
                               % (path, block.state.get("architecture")))
    return state, infer_config(state, lr, clamp, path), "nvlabs-pytorch-pkl"


def convert_tf_pickle(data, path):
    gs = data[2] if isinstance(data, tuple) and len(data) == 3 else None
    if not isinstance(gs, TFNetworkStub):
        raise ConvertError("%s: expected a TF (G, D, Gs) pickle" % path)
    if gs.state.get("version", 0) < 4:
        raise ConvertError("%s: TF network version < 4 is not supported" % path)
    tf = {}

    def collect(prefix, net):
        for name, value in net.state.get("variables", []):
            tf[prefix + name] = np.asarray(value, dtype=np.float32)
        for name, comp in (net.state.get("components") or {}).items():
            collect(prefix + name + "/", comp)

    collect("", gs)
    kw = dict(gs.state.get("static_kwargs") or {})
    if "mapping/LabelConcat" in tf or any(k.startswith("mapping/LabelEmbed") for k in tf):
        raise ConvertError("%s: conditional generators are not supported" % path)
    state = collections.OrderedDict()
    res = 4
    while "synthesis/%dx%d/ToRGB/weight" % (res * 2, res * 2) in tf:
        res *= 2

    def conv(w, flip=False):  # TF [kh, kw, in, out] -> [out, in, kh, kw]
        if flip:
            w = w[::-1, ::-1]
        return np.ascontiguousarray(w.transpose(3, 2, 0, 1))

    def fill_layer(p, tfp, noise_index, r, flip):
        state[p + ".weight"] = conv(tf[tfp + "/weight"], flip)
        state[p + ".noise_strength"] = np.asarray(tf[tfp + "/noise_strength"], dtype=np.float32).reshape(())
        state[p + ".bias"] = tf[tfp + "/bias"]
        state[p + ".resample_filter"] = resample_filter()
        state[p + ".noise_const"] = tf["synthesis/noise%d" % noise_index][0, 0]
        state[p + ".affine.weight"] = np.ascontiguousarray(tf[tfp + "/mod_weight"].T)
        state[p + ".affine.bias"] = tf[tfp + "/mod_bias"] + 1

    def fill_torgb(p, tfp):
        state[p + ".weight"] = conv(tf[tfp + "/weight"])
        state[p + ".bias"] = tf[tfp + "/bias"]
        state[p + ".affine.weight"] = np.ascontiguousarray(tf[tfp + "/mod_weight"].T)
        state[p + ".affine.bias"] = tf[tfp + "/mod_bias"] + 1

    r = 4
    while r <= res:
        b, t = "synthesis.b%d" % r, "synthesis/%dx%d" % (r, r)
        k = int(round(math.log2(r)))
        if r == 4:
            state[b + ".const"] = tf[t + "/Const/const"][0]
        state[b + ".resample_filter"] = resample_filter()
        if r == 4:
            fill_layer(b + ".conv1", t + "/Conv", 0, r, False)
        else:
            fill_layer(b + ".conv0", t + "/Conv0_up", 2 * k - 5, r, True)
            fill_layer(b + ".conv1", t + "/Conv1", 2 * k - 4, r, False)
        fill_torgb(b + ".torgb", t + "/ToRGB")
        r *= 2
    state["mapping.w_avg"] = tf["dlatent_avg"]
    i = 0
    while "mapping/Dense%d/weight" % i in tf:
        state["mapping.fc%d.weight" % i] = np.ascontiguousarray(tf["mapping/Dense%d/weight" % i].T)
        state["mapping.fc%d.bias" % i] = tf["mapping/Dense%d/bias" % i]
        i += 1
    lr = kw.get("mapping_lrmul", 0.01)
    return state, infer_config(state, lr, kw.get("conv_clamp"), path), "nvlabs-tf-pkl"


# ---------------------------------------------------------------------------
# rosinality

def convert_rosinality(path, trust):
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # argparse.Namespace in 'args' etc.
        if not is_zip(path):
            raise ConvertError("%s: not a torch.save checkpoint (a plain pickle: an NVlabs snapshot?); use "
                               "--format pkl (or auto)" % path)
        if not trust:
            raise ConvertError("%s: cannot load with weights_only=True (%s); pass --trust-checkpoint for a file "
                               "you trust (it may run pickled code)" % (path, str(e).splitlines()[0]))
        ckpt = torch.load(path, map_location="cpu")
    if not isinstance(ckpt, dict) or "g_ema" not in ckpt:
        raise ConvertError("%s: no 'g_ema' state dict in the checkpoint" % path)
    src = {k: to_numpy(v) for k, v in ckpt["g_ema"].items()}
    state = collections.OrderedDict()
    n_rgbs = sum(1 for k in src if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
    res = 2 ** (n_rgbs + 2)

    def conv_layer(p, q, noise_key):
        state[p + ".weight"] = src[q + ".conv.weight"][0]
        state[p + ".noise_strength"] = src[q + ".noise.weight"].reshape(())
        state[p + ".bias"] = src[q + ".activate.bias"]
        state[p + ".resample_filter"] = resample_filter()
        state[p + ".noise_const"] = src[noise_key][0, 0]
        state[p + ".affine.weight"] = src[q + ".conv.modulation.weight"]
        state[p + ".affine.bias"] = src[q + ".conv.modulation.bias"]

    def torgb(p, q):
        state[p + ".weight"] = src[q + ".conv.weight"][0]
        state[p + ".bias"] = src[q + ".bias"].reshape(-1)
        state[p + ".affine.weight"] = src[q + ".conv.modulation.weight"]
        state[p + ".affine.bias"] = src[q + ".conv.modulation.bias"]

    r = 4
    while r <= res:
        b = "synthesis.b%d" % r
        if r == 4:
            state[b + ".const"] = src["input.input"][0]
        state[b + ".resample_filter"] = resample_filter()
        if r == 4:
            conv_layer(b + ".conv1", "conv1", "noises.noise_0")
            torgb(b + ".torgb", "to_rgb1")
        else:
            j = int(round(math.log2(r))) - 3
            conv_layer(b + ".conv0", "convs.%d" % (2 * j), "noises.noise_%d" % (2 * j + 1))
            conv_layer(b + ".conv1", "convs.%d" % (2 * j + 1), "noises.noise_%d" % (2 * j + 2))
            torgb(b + ".torgb", "to_rgbs.%d" % j)
        r *= 2
    n_mlp = sum(1 for k in src if k.startswith("style.") and k.endswith(".weight"))
    for i in range(n_mlp):
        state["mapping.fc%d.weight" % i] = src["style.%d.weight" % (i + 1)]
        state["mapping.fc%d.bias" % i] = src["style.%d.bias" % (i + 1)]
    approximate = "latent_avg" not in ckpt
    if not approximate:
        state["mapping.w_avg"] = to_numpy(ckpt["latent_avg"]).reshape(-1)
    cfg = infer_config(state, 0.01, None, path)
    if approximate:
        state["mapping.w_avg"] = estimate_w_avg(state, cfg)
    return state, cfg, "rosinality-pt" + (" (w_avg estimated)" if approximate else "")


def estimate_w_avg(state, cfg, samples=16384, seed=0):
    """Mean of mapping(randn) (rosinality's mean_latent) when latent_avg is missing."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, cfg["z_dim"], generator=gen)
    x = x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)
    lr = cfg["lr_multiplier"]
    for i in range(cfg["mapping_num_layers"]):
        w = torch.from_numpy(state["mapping.fc%d.weight" % i]) * (lr / math.sqrt(x.shape[1]))
        b = torch.from_numpy(state["mapping.fc%d.bias" % i]) * lr
        x = torch.nn.functional.leaky_relu(x @ w.t() + b, 0.2) * math.sqrt(2)
    return x.mean(0).numpy().astype(np.float32)


# ---------------------------------------------------------------------------
# Writing and verification

def check_state(state, cfg, source):
    expected = expected_shapes(cfg)
    for key, shape in expected.items():
        if key not in state:
            raise ConvertError("%s: missing %s (expected shape %s)" % (source, key, list(shape)))
        if tuple(state[key].shape) != shape:
            raise ConvertError("%s: %s has shape %s, expected %s" % (source, key, list(state[key].shape), list(shape)))
    extra = sorted(set(state) - set(expected))
    if extra:
        raise ConvertError("%s: unexpected keys %s (unsupported architecture?)" % (source, extra[:5]))
    num_ws = 2 * int(round(math.log2(cfg["img_resolution"]))) - 2
    if "synthesis.b%d.torgb.weight" % cfg["img_resolution"] not in state:
        raise ConvertError("%s: no toRGB at the output resolution" % source)
    for key, value in state.items():
        if not np.all(np.isfinite(value)):
            raise ConvertError("%s: %s has NaN or infinite values" % (source, key))
    return expected, num_ws


def layer_names(cfg):
    names, r = [], 4
    while r <= cfg["img_resolution"]:
        names += (["b4.conv1"] if r == 4 else ["b%d.conv0" % r, "b%d.conv1" % r]) + ["b%d.torgb" % r]
        r *= 2
    return names


def write_h5(path, state, cfg, source_format, source_sha256):
    expected, num_ws = check_state(state, cfg, path)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["config"] = json.dumps(cfg)
            for key in ["z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_num_layers",
                        "channel_base", "channel_max", "num_fp16_res"]:
                f.attrs[key] = np.int64(cfg[key])
            f.attrs["conv_clamp"] = "none" if cfg["conv_clamp"] is None else np.float64(cfg["conv_clamp"])
            f.attrs["architecture"] = "skip"
            f.attrs["lr_multiplier"] = np.float64(cfg["lr_multiplier"])
            f.attrs["num_ws"] = np.int64(num_ws)
            f.attrs["layers"] = json.dumps(layer_names(cfg))
            f.attrs["source_format"] = source_format
            f.attrs["source_sha256"] = source_sha256
            for key in expected:
                f.create_dataset("weights/" + key, data=np.array(state[key], dtype=np.float32, order="C"))  # keeps 0-d shapes
        # Verify by reading everything back.
        with h5py.File(tmp, "r") as f:
            stored = set(f["weights"].keys())
            if stored != set(expected):
                raise ConvertError("verification failed: stored keys differ from the expected list")
            for key in expected:
                if not np.array_equal(f["weights/" + key][()], state[key].astype(np.float32)):
                    raise ConvertError("verification failed: %s differs after reload" % key)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_zip(path):
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def convert(path, out, fmt="auto", trust=False):
    if not os.path.isfile(path):
        raise ConvertError("%s: no such file" % path)
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise ConvertError("output directory %s does not exist (create it first)" % out_dir)
    if fmt == "auto":
        # By content, not by name: torch.save writes a zip (rosinality .pt), NVlabs
        # snapshots are plain pickles whatever their file name says.
        fmt = "rosinality" if is_zip(path) else "pkl"
    if fmt == "rosinality":
        state, cfg, source_format = convert_rosinality(path, trust)
    else:
        data = load_pickle(path)
        if isinstance(data, tuple):
            state, cfg, source_format = convert_tf_pickle(data, path)
        else:
            state, cfg, source_format = convert_nvlabs_pickle(data, path)
    write_h5(out, state, cfg, source_format, sha256_file(path))
    return cfg, source_format


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="NVlabs .pkl (PyTorch or TF era) or rosinality .pt")
    p.add_argument("--out", required=True, help="output HDF5 (feu layout)")
    p.add_argument("--format", choices=["auto", "pkl", "rosinality"], default="auto")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="rosinality only: allow full torch.load (runs pickled code) when weights_only fails")
    args = p.parse_args(argv)
    try:
        cfg, source_format = convert(args.input, args.out, args.format, args.trust_checkpoint)
    except ConvertError as e:
        print("convert_stylegan2: error: %s" % e, file=sys.stderr)
        return 2
    print("%s: %dx%d generator from %s (z %d, w %d, mapping %d, channel_base %d, channel_max %d, conv_clamp %s)"
          % (args.out, cfg["img_resolution"], cfg["img_resolution"], source_format, cfg["z_dim"], cfg["w_dim"],
             cfg["mapping_num_layers"], cfg["channel_base"], cfg["channel_max"], cfg["conv_clamp"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
