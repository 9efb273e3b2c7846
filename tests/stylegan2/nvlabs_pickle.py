"""Writes a generator's weights as NVlabs stylegan2-ada-pytorch stores them in a network pickle.

The pickle holds persistent_class objects (each a _reconstruct_persistent_obj call on its
class name, source and module state), as NVlabs' torch_utils/persistence.py writes them, so
scripts/convert_stylegan2.py can be tested on it without NVlabs' code or a download. The
class source is a SystemExit: a converter that ran pickled code would stop.
"""

import collections
import pickle
import sys
import types

import numpy as np
import torch

_BUFFERS = ("resample_filter", "noise_const", "w_avg")


def _reconstruct_persistent_obj(meta):  # never called by the converter
    raise AssertionError("the converter must not call pickled code")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
_persistence = types.ModuleType("torch_utils.persistence")
_persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
sys.modules.setdefault("torch_utils", types.ModuleType("torch_utils"))
sys.modules["torch_utils.persistence"] = _persistence


class _Persistent:
    def __init__(self, class_name, state):
        self.meta = dict(type="class", version=6, module_src="raise SystemExit('source executed')",
                         class_name="training.networks." + class_name, state=state)

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def _module_state(**extra):
    s = dict(training=False, _parameters=collections.OrderedDict(), _buffers=collections.OrderedDict(),
             _non_persistent_buffers_set=set(), _modules=collections.OrderedDict())
    s.update(extra)
    return s


def write_nvlabs_pickle(weights, init_kwargs, path, lr_multiplier=0.01, resolution=None):
    """weights: NVlabs state-dict keys -> numpy arrays (feu's generator.h5 'weights' group uses
    the same names); init_kwargs: Generator(**init_kwargs) as NVlabs records it."""
    root = _module_state(_init_kwargs=init_kwargs)
    nodes = {"": root}
    for key, value in weights.items():
        parts = key.split(".")
        for depth in range(1, len(parts)):
            path_ = ".".join(parts[:depth])
            if path_ not in nodes:
                parent = nodes[".".join(parts[:depth - 1])]
                name = parts[depth - 1]
                extra = {}
                if name.startswith("fc"):
                    fan_in = weights[path_ + ".weight"].shape[1]
                    extra = dict(bias_gain=lr_multiplier, weight_gain=lr_multiplier / fan_in ** 0.5,
                                 activation="lrelu")
                if name.startswith("conv"):
                    extra = dict(conv_clamp=None, up=2 if name == "conv0" else 1)
                if name.startswith("b") and depth == 2:
                    extra = dict(architecture="skip", use_fp16=False)
                nodes[path_] = _module_state(**extra)
                parent["_modules"][name] = nodes[path_]
        owner = nodes[".".join(parts[:-1])]
        tensor = torch.from_numpy(np.array(value, copy=True))  # 0-d values too
        if parts[-1] in _BUFFERS:
            owner["_buffers"][parts[-1]] = tensor
        else:
            owner["_parameters"][parts[-1]] = torch.nn.Parameter(tensor, requires_grad=False)
    # A non-persistent buffer, which the converter must skip.
    nodes["synthesis.b4.conv1"]["_buffers"]["scratch"] = torch.zeros(3)
    nodes["synthesis.b4.conv1"]["_non_persistent_buffers_set"] = {"scratch"}

    def wrap(state, name):
        state["_modules"] = collections.OrderedDict((k, wrap(v, k)) for k, v in state["_modules"].items())
        return _Persistent(name, state)

    with open(path, "wb") as f:
        pickle.dump(dict(G_ema=wrap(root, "Generator"),
                         training_set_kwargs=dict(resolution=resolution or init_kwargs["img_resolution"])), f)
