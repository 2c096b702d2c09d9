"""A model behind any OpenAI-compatible server (vLLM, Ollama, llama.cpp server), streamed over SSE."""
from __future__ import annotations

import json
import os
from typing import Iterator

from ragqa.config import GeneratorConfig
from ragqa.errors import GeneratorError

Messages = list[dict]


class OpenAIGenerator:
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint, streamed."""

    def __init__(self, config: GeneratorConfig):
        self.config = config
        self.name = f"{config.model} @ {config.base_url}"
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(config.api_key_env, "")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def count_tokens(self, text: str) -> int:
        # no tokenizer for a remote model: ~4 characters per token in English is close enough
        # for a budget that leaves a wide margin
        return max(1, len(text) // 4)

    def generate(self, messages: Messages, max_new_tokens: int | None = None) -> Iterator[str]:
        import httpx

        body = {"model": self.config.model, "messages": messages, "stream": True,
                "max_tokens": max_new_tokens or self.config.max_new_tokens,
                "temperature": self.config.temperature}
        try:
            with httpx.stream("POST", self.url, json=body, headers=self.headers, timeout=120) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise GeneratorError(f"server {self.config.base_url}: HTTP {resp.status_code} "
                                         f"({resp.text[:200].strip()}) — check --model and the server log")
                yield from _sse_pieces(resp.iter_lines())
        except httpx.TransportError as exc:
            raise GeneratorError(
                f"server {self.config.base_url}: unreachable ({exc.__class__.__name__}) — start it "
                "(e.g. `vllm serve MODEL`) or fix --base-url"
            ) from None


def _sse_pieces(lines) -> Iterator[str]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        choices = json.loads(data).get("choices") or [{}]
        if piece := (choices[0].get("delta") or {}).get("content"):
            yield piece
