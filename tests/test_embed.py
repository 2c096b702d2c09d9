"""Embedder precision: bf16 autocast only where the CPU computes bf16 in hardware."""
import contextlib
from types import SimpleNamespace

import pytest

from ragqa.config import EmbedderConfig
from ragqa.errors import ConfigError
from retrieval.embed import SentenceTransformerEmbedder


def embedder_with(precision: str) -> SentenceTransformerEmbedder:
    e = object.__new__(SentenceTransformerEmbedder)  # no model load: only the precision choice is tested
    e.config, e.model = EmbedderConfig(precision=precision), SimpleNamespace(device=SimpleNamespace(type="cpu"))
    return e


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_uses_bf16_only_on_cpus_with_bf16_units(monkeypatch, has_bf16):
    import torch

    monkeypatch.setattr("retrieval.embed.cpu_has_bf16", lambda: has_bf16)
    ctx = embedder_with("auto")._autocast()
    assert isinstance(ctx, torch.autocast) == has_bf16
    assert isinstance(embedder_with("fp32")._autocast(), contextlib.nullcontext)


def test_auto_is_the_default_and_bad_values_name_the_fix():
    assert EmbedderConfig().precision == "auto"
    with pytest.raises(ConfigError, match="use 'auto', 'fp32' or 'bf16'"):
        EmbedderConfig(precision="int4")
