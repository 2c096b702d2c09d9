"""A transformer encoder's linear layers as single oneDNN calls on CPU, bias and GELU fused in.

Why: in bf16 on a CPU, torch's ``addmm`` first copies the bias into every output row and the
GELU after the MLP's first layer then reads and writes that output once more. Profiling MiniLM
on the dev corpus (bf16, AMX Xeon, 2 threads) put 41% of the embedding time in ``addmm``, 13% in
GELU and 9% in those bias copies. One fused call per layer: the dev ingest's embedding stage took
17.4 / 17.8 / 26.7 s against 24.7 / 22.8 / 22.0 s unfused (alternating runs of bench/ingest.py; the
26.7 a busy moment), vectors at cosine >= 0.99995 of the unfused ones.

``torch.ops.mkldnn._linear_pointwise`` is the op torch's own compiler emits for such layers. It
is private API, so :func:`fuse_linears` is checked on a probe by its caller and undone when the
op is missing or its vectors differ.
"""
from __future__ import annotations

from typing import Callable

import torch


def available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class FusedLinear(torch.nn.Module):
    """``nn.Linear`` (followed by exact GELU when ``gelu``) in one call, for inference."""

    def __init__(self, linear: torch.nn.Linear, gelu: bool = False):
        super().__init__()
        self.weight, self.bias, self.gelu = linear.weight, linear.bias, gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attr, algorithm = ("gelu", "none") if self.gelu else ("none", "")
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), self.weight, self.bias, attr, [],
                                               algorithm)
        return y.reshape(*x.shape[:-1], y.shape[-1])


def _exact_gelu(act) -> bool:
    # transformers' GELUActivation wraps torch's erf GELU; tanh and quick variants are left alone
    return getattr(act, "act", None) is torch.nn.functional.gelu


def fuse_linears(model: torch.nn.Module) -> Callable[[], None]:
    """Swap every ``nn.Linear`` under ``model`` for a :class:`FusedLinear` (absorbing a BERT-style
    ``intermediate_act_fn`` GELU that follows one); returns what undoes the swap."""
    swaps = []  # (parent, attribute, old module)
    for parent in list(model.modules()):
        fold = isinstance(getattr(parent, "dense", None), torch.nn.Linear) and _exact_gelu(
            getattr(parent, "intermediate_act_fn", None))
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                swaps.append((parent, name, child))
                setattr(parent, name, FusedLinear(child, gelu=fold and name == "dense"))
        if fold:
            swaps.append((parent, "intermediate_act_fn", parent.intermediate_act_fn))
            parent.intermediate_act_fn = torch.nn.Identity()

    def undo() -> None:
        for parent, name, old in reversed(swaps):
            setattr(parent, name, old)

    return undo
