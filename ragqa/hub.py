"""Models named by a Hugging Face id: fail at once, with one line, when they cannot be had."""
from __future__ import annotations

import os
from pathlib import Path

from ragqa.errors import ConfigError


def check_available(kind: str, model: str, packaged: tuple[str, ...] = ()) -> None:
    """One line, at once, when a model must come from the Hugging Face hub and cannot: without it,
    an unknown id on a machine without internet costs ~50 s of retries and ~20 lines of warnings."""
    if model in packaged or Path(model).expanduser().exists():
        return
    if model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model:  # a path, not an id
        raise ConfigError(f"{kind} {model}: folder not found — check the path")
    if _in_hub_cache(model):
        return
    fix = "pass a local model folder, or a name already downloaded into the Hugging Face cache"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ConfigError(f"{kind} {model}: not a local folder and not in the Hugging Face cache "
                          f"(HF_HUB_OFFLINE is set) — {fix}")
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise ConfigError(f"{kind} {model}: not a local folder, not in the Hugging Face cache, and "
                          f"{host} cannot be reached to download it — {fix}") from None


def _in_hub_cache(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    names = [model] if "/" in model else [model, f"sentence-transformers/{model}"]
    return any(isinstance(try_to_load_from_cache(n, "config.json"), str) for n in names)
