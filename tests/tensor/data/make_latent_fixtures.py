#!/usr/bin/python3
"""Writes the latent-file fixtures of test_latent_file.cpp with the tools users write them with:
numpy.save and torch.save (e4e's latents.pt). Debian's python3 with python3-numpy and python3-torch.

The latents are W+ codes [2, 3, 4] (a toy generator: num_ws 3, w_dim 4) whose values are
(arange(24) - 11) / 8, exact in float16/32/64.
"""
import numpy as np
import torch


class NotATensor:
    pass


wplus = ((np.arange(24, dtype=np.float64) - 11) / 8).reshape(2, 3, 4)
np.save("wplus_f32.npy", wplus.astype(np.float32))
np.save("wplus_f64.npy", wplus)
np.save("wplus_f16.npy", wplus.astype(np.float16))
np.save("wplus_fortran.npy", np.asfortranarray(wplus.astype(np.float32)))
np.save("w_f32.npy", wplus[:, 0, :].astype(np.float32))
torch.save(torch.from_numpy(wplus.astype(np.float32)), "latents.pt")
torch.save({"latents": torch.from_numpy(wplus.astype(np.float32))}, "dict.pt")
torch.save(NotATensor(), "object.pt")
