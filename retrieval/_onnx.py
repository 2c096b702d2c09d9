"""The embedder's transformer on ONNX Runtime with dynamic int8 weights: the opt-in fast runtime
(``[embedder] model = "NAME#onnx-int8"``).

Measured (bench/embed_runtimes.py, AMD EPYC without AVX512, 2 threads, idle): 1.42x torch fp32's
passages/s, cosine to the fp32 vectors min 0.981 / mean 0.992, and the dev index re-embedded with it
kept ARAGOG hybrid doc-hit@1/@5 at 0.958 / 1.000. The vectors differ from fp32's, so the runtime is
part of the embedder's id: an index is never searched with the other one's vectors.

The graph is exported once per model folder (TorchScript exporter, onnxruntime's transformer
optimizer for BERT-family models, then per-channel dynamic int8 quantization) into
``$RAGQA_HOME/models/onnx-int8/``, checked against torch on probe texts, and cached. Pooling and
normalisation stay the sentence-transformers modules, run on the ONNX output.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ragqa.config import home

log = logging.getLogger(__name__)

_FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "electra"}
_PROBE = ["ragqa probe: attention heads retrieve passages about transformers.", "a second, shorter probe"]


def available() -> bool:
    try:
        import onnx  # noqa: F401  (the exporter and the optimizer need it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxEncoder:
    """Runs a sentence-transformers model's first module (the transformer) on ONNX Runtime: the cached
    int8 graph, or the graph at ``path`` (bench/embed_runtimes.py compares the export's stages)."""

    def __init__(self, st_model, threads: int = 0, path: Path | None = None):
        import onnxruntime as ort

        self.st_model = st_model
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(path or exported(st_model)), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def embed(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Sentence embeddings, longest texts batched first as sentence-transformers does (little padding)."""
        from tqdm.auto import tqdm

        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = np.zeros((len(texts), self.st_model.get_embedding_dimension()), np.float32)
        for start in tqdm(range(0, len(texts), batch_size), disable=not progress, desc="Batches"):
            rows = order[start:start + batch_size]
            vectors[rows] = self.encode([texts[i] for i in rows])
        return vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        """Sentence embeddings of one batch, through the model's own pooling/normalising modules."""
        import torch

        features = self.st_model.preprocess(texts)
        feed = {name: features[name].numpy().astype(np.int64) for name in self.inputs}
        hidden = self.session.run(None, feed)[0]
        features = {"token_embeddings": torch.from_numpy(hidden), "attention_mask": features["attention_mask"]}
        with torch.no_grad():
            for module in list(self.st_model)[1:]:
                features = module(features)
        return features["sentence_embedding"].numpy()


def exported(st_model) -> Path:
    """The cached int8 ONNX file for ``st_model``, exported and verified on first use."""
    target = home() / "models" / "onnx-int8" / _key(st_model[0])
    if (target / "model.onnx").exists():
        return target / "model.onnx"
    log.info("exporting the embedder to ONNX int8 once (a few seconds), cached in %s", target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        stages = export_stages(st_model, tmp)
        _verify(st_model, stages["int8"])
        stages["int8"].rename(tmp / "model.onnx")
        tmp.rename(target)  # atomic: a killed export never leaves a half-written graph
    except OSError:
        if not (target / "model.onnx").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "model.onnx"


def export_stages(st_model, folder: Path) -> dict[str, Path]:
    """The transformer as ONNX graphs in ``folder``: ``plain`` (TorchScript exporter), ``fused``
    (onnxruntime's transformer fusions) and ``int8`` (fused, per-channel dynamic int8 weights)."""
    import torch

    model = st_model[0].auto_model.eval()
    features = st_model.preprocess(_PROBE)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in features]

    class Hidden(torch.nn.Module):  # keyword arguments: transformers 5 reorders forward()'s positionals
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model(**dict(zip(names, args))).last_hidden_state

    stages = {name: folder / f"{name}.onnx" for name in ("plain", "fused", "int8")}
    axes = {n: {0: "batch", 1: "tokens"} for n in names + ["hidden"]}
    torch.onnx.export(Hidden(), tuple(features[n] for n in names), str(stages["plain"]), input_names=names,
                      output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)
    _optimize(stages["plain"], stages["fused"], model.config)
    _quantize(stages["fused"], stages["int8"])
    return stages


def _quantize(fused: Path, out: Path) -> None:
    """Per-channel int8 weights of the matrix products (per tensor moved vectors to cosine 0.85)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _optimize(raw: Path, out: Path, config) -> None:
    """Fuse attention, LayerNorm and GELU where onnxruntime knows the architecture (alone 0.9x torch
    fp32 here; the int8 weights bring the speed)."""
    if config.model_type not in _FUSABLE:
        shutil.copyfile(raw, out)
        return
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                                     hidden_size=config.hidden_size)
    fused.save_model_to_file(str(out))


def _verify(st_model, path: Path) -> None:
    """The exported graph must give (nearly) torch's vectors: an export gone wrong would fill an index with noise."""
    import torch

    with torch.no_grad():
        reference = st_model.encode(_PROBE, convert_to_numpy=True, normalize_embeddings=True)
    got = OnnxEncoder(st_model, path=path).encode(_PROBE)
    cos = (got * reference).sum(1) / np.linalg.norm(got, axis=1)
    if cos.min() < 0.95:
        raise RuntimeError(f"ONNX int8 export strays from torch (cosine {cos.min():.3f})")


def _key(transformer) -> str:
    """Folder name: the model's name plus a digest of its weight files (a replaced folder re-exports)."""
    folder = Path(transformer.auto_model.config.name_or_path)
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.glob("*"))
             if p.suffix in (".safetensors", ".bin")] if folder.is_dir() else []
    digest = hashlib.sha256(repr((str(folder), stamp)).encode()).hexdigest()[:12]
    return f"{folder.name or 'model'}-{digest}"
