"""`ragqa train` on a tiny in-process Llama: masking, EOS, padding, guards, checkpoints and resume.

The tiny model (2 layers, hidden 32) uses MiniLM's WordPiece tokenizer (shipped offline) with a
ChatML-style template, so every test runs in seconds without the real model; the real SmolLM2 run
is in test_train_real.py.
"""
import json
import re

import pytest

from ragqa.config import Config, GeneratorConfig, TrainConfig
from ragqa.errors import ConfigError
from finetune._train import (IGNORE, TrainingError, complete_checkpoints, encode, gradient_norm, load_chats,
                             preflight, train)
from ragqa.generators._transformers import stop_ids

TEMPLATE = ("{% for m in messages %}<|im_start|> {{ m['role'] }}\n{{ m['content'] }} [SEP]\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|> assistant\n{% endif %}")
COLOURS = ["red", "green", "blue", "black", "white", "yellow", "purple", "orange"]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A saved 2-layer Llama with a chat template: a base model folder ``ragqa train`` can load."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from retrieval.embed import packaged_minilm_path

    folder = tmp_path_factory.mktemp("tiny-base")
    tok = AutoTokenizer.from_pretrained(str(packaged_minilm_path()))
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>"], "eos_token": "[SEP]"})
    tok.chat_template = TEMPLATE
    torch.manual_seed(0)
    # widths that are multiples of 64: bitsandbytes' CPU kernels (used where the CPU has AVX-512) pack
    # 4-bit weights in blocks of 64 inputs and 32 outputs, and cannot quantise a 32-wide layer
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id,
                      initializer_range=0.5)  # weights large enough for a rank-4 LoRA to move the logits
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def chat(i: int) -> list[dict]:
    colour = COLOURS[i % len(COLOURS)]
    return [{"role": "system", "content": "Answer using only the sources."},
            {"role": "user", "content": f"Sources:\n\n[1] (notes.md, p. 1)\nThe box number {i} is {colour}.\n\n"
                                        f"Question: What colour is box {i}?"},
            {"role": "assistant", "content": f"\"The box number {i} is {colour}.\" [1]"}]


def write_jsonl(path, chats):
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in chats))
    return path


def cfg(**train) -> Config:
    base = dict(max_steps=12, batch_size=4, learning_rate=3e-3, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                logging_steps=2, eval_steps=4, save_steps=4, smoke_steps=0, warmup_ratio=0.0)
    return Config(train=TrainConfig(**{**base, **train}), generator=GeneratorConfig(precision="fp32"))


def tokenizer_of(tiny_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)


def test_only_the_reply_and_its_eos_carry_a_loss(tiny_base):
    tok = tokenizer_of(tiny_base)
    stops = {tok.eos_token_id}
    e = encode(chat(3), tok, stops)
    prompt = tok.apply_chat_template(chat(3)[:-1], add_generation_prompt=True, tokenize=False)
    n_prompt = len(tok(prompt, add_special_tokens=False).input_ids)
    assert e["labels"][:n_prompt] == [IGNORE] * n_prompt and IGNORE not in e["labels"][n_prompt:]
    assert e["labels"][-1] == tok.eos_token_id and e["labels"][n_prompt:] == e["input_ids"][n_prompt:]
    assert tok.decode(e["labels"][n_prompt:], skip_special_tokens=True) == tok.decode(
        tok(chat(3)[-1]["content"], add_special_tokens=False).input_ids)  # the reply, nothing after its EOS


def test_a_model_without_chat_template_trains_on_the_plain_layout_it_answers_from(tiny_base):
    from ragqa.generators._transformers import plain_prompt

    tok = tokenizer_of(tiny_base)
    tok.chat_template = None
    e = encode(chat(1), tok, {tok.eos_token_id})
    prompt = [t for t, label in zip(e["input_ids"], e["labels"]) if label == IGNORE]
    assert prompt == tok(plain_prompt(chat(1)[:-1])).input_ids  # token for token what the generator sends
    assert "question : what colour is box 1? answer :" in tok.decode(prompt)
    assert e["labels"][-1] == tok.eos_token_id


def test_preflight_refuses_data_that_would_be_cut(tiny_base):
    tok = tokenizer_of(tiny_base)
    long_chat = chat(0)
    long_chat[1] = {"role": "user", "content": "word " * 400}
    chats = {"train": [chat(i) for i in range(18)] + [long_chat] * 2}
    with pytest.raises(TrainingError, match=r"10% of the training examples exceed train.max_length=128.*--max-length"):
        preflight(chats, tok, {tok.eos_token_id}, TrainConfig(max_length=128))
    checked = preflight(chats, tok, {tok.eos_token_id}, TrainConfig(max_length=128, max_dropped_share=0.2))
    assert checked["dropped"]["train"] == 2 and len(checked["encoded"]["train"]) == 18


def test_bad_datasets_get_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="no dataset here"):
        load_chats(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="no `messages` column"):
        load_chats(write_jsonl(tmp_path / "a.jsonl", []) and _rows(tmp_path / "b.jsonl", [{"question": "q"}]))
    with pytest.raises(ConfigError, match="train split is empty"):
        load_chats(write_jsonl(tmp_path / "c.jsonl", []))
    with pytest.raises(ConfigError, match="row 1: the last message must be the assistant"):
        load_chats(write_jsonl(tmp_path / "d.jsonl", [chat(0), chat(1)[:-1]]))


def _rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_lora_learns_saves_and_reloads_as_an_adapter(tiny_base, tmp_path):
    from ragqa.generators import load_causal_lm

    data = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(40)])
    metrics = train(data, tiny_base, tmp_path / "run", cfg(max_steps=20, learning_rate=3e-2), progress=False)
    run = tmp_path / "run"
    assert metrics["last_loss"] < 0.7 * metrics["first_loss"]  # it learned the pattern
    assert (run / "adapter_config.json").is_file() and (run / "adapter_model.safetensors").is_file()
    assert (run / "loss.png").stat().st_size > 1000 and json.loads((run / "metrics.json").read_text())["steps"] == 20
    assert 0 < metrics["trainable_parameters"] < metrics["parameters"] and metrics["tokens_per_s"] > 0
    assert len(metrics["step_seconds"]) == 20 and all(t > 0 for t in metrics["step_seconds"])
    assert re.search(r"tokens/s, \d+\.\d\d s/step; peak memory \d+ MB RSS", (run / "README.md").read_text())
    assert set(metrics["config"]) >= {"lora_r", "target_modules"}
    model, _ = load_causal_lm(GeneratorConfig(model=tiny_base, adapter=str(run), precision="fp32"))
    assert sorted({n.split(".")[-4] for n, _ in model.named_parameters() if "lora_A" in n}) == [
        "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]  # every projection by default
    with pytest.raises(ConfigError, match="already holds a run — pass --resume"):
        train(data, tiny_base, run, cfg(), progress=False)


def test_resume_after_an_interruption_matches_an_uninterrupted_run(tiny_base, tmp_path, monkeypatch):
    import torch
    from transformers import TrainerCallback

    from finetune import _train

    data = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(40)])
    whole = train(data, tiny_base, tmp_path / "whole", cfg(), progress=False)

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:  # after checkpoint-4, before checkpoint-8
                raise KeyboardInterrupt

    real = _train._callbacks
    monkeypatch.setattr(_train, "_callbacks", lambda *a: (*real(*a), Kill()))
    with pytest.raises(KeyboardInterrupt):
        train(data, tiny_base, tmp_path / "cut", cfg(), progress=False)
    monkeypatch.setattr(_train, "_callbacks", real)
    cut = tmp_path / "cut"
    assert not (cut / "adapter_config.json").exists()  # no half-trained adapter where a finished one goes
    torn = cut / "checkpoints" / "checkpoint-9"  # a save a kill tore: weights, no trainer state
    torn.mkdir()
    (torn / "adapter_model.safetensors").write_bytes(b"torn")
    assert [p.name for p in complete_checkpoints(cut / "checkpoints")] == ["checkpoint-4"]
    resumed = train(data, tiny_base, cut, cfg(), resume=True, progress=False)
    assert resumed["steps"] == whole["steps"] == 12
    assert resumed["last_loss"] == pytest.approx(whole["last_loss"], rel=1e-3)  # same data order and state
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "whole" / "adapter_model.safetensors"), load_file(cut / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_a_model_that_does_not_stop_is_caught_by_the_smoke_test(tiny_base, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(12)])
    with pytest.raises(TrainingError, match="smoke test after 1 steps: the model's reply did not end with EOS"):
        train(data, tiny_base, tmp_path / "run", cfg(smoke_steps=1, max_steps=3), progress=False)


def test_no_gradient_is_detected(tiny_base):
    import torch

    layer = torch.nn.Linear(4, 4)
    assert gradient_norm(layer) == 0.0  # nothing computed yet: what the 4-bit trap looks like
    layer(torch.ones(1, 4)).sum().backward()
    assert gradient_norm(layer) > 0


def test_resume_without_checkpoint_and_a_missing_base_fail_clearly(tiny_base, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(8)])
    with pytest.raises(ConfigError, match="no complete checkpoint to resume from"):
        train(data, tiny_base, tmp_path / "new", cfg(), resume=True, progress=False)
    with pytest.raises(ConfigError, match="no-such-model: folder not found"):
        train(data, str(tmp_path / "no-such-model"), tmp_path / "run", cfg(), progress=False)


def test_an_adapter_on_another_base_is_refused(tiny_base, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from ragqa.generators import load_causal_lm

    data = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(8)])
    train(data, tiny_base, tmp_path / "run", cfg(max_steps=2), progress=False)
    other = tmp_path / "other"
    tok = tokenizer_of(tiny_base)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(other)
    tok.save_pretrained(other)
    with pytest.raises(ConfigError, match="does not fit model .*other.*pass the adapter's own base model"):
        load_causal_lm(GeneratorConfig(model=str(other), adapter=str(tmp_path / "run"), precision="fp32"))


def test_stop_ids_include_the_chat_turn_end(tiny_base):
    tok = tokenizer_of(tiny_base)

    class Model:
        class generation_config:
            eos_token_id = [7, tok.eos_token_id]

    assert stop_ids(tok, Model()) == {7, tok.eos_token_id}


@pytest.fixture(scope="module")
def tiny_run(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-run")
    data = write_jsonl(folder / "train.jsonl", [chat(i) for i in range(16)])
    train(data, tiny_base, folder / "run", cfg(max_steps=6, learning_rate=3e-2), progress=False)
    return folder / "run"


def _logits(model, tokenizer):
    import torch

    ids = tokenizer("the box number 3 is", return_tensors="pt").input_ids.to(model.device)  # CUDA on the device check
    with torch.no_grad():
        return model(input_ids=ids).logits.float().cpu()


def test_export_writes_the_adapter_or_merged_weights_that_answer_alike(tiny_base, tiny_run, tmp_path):
    import torch

    from finetune import export
    from ragqa.generators import load_causal_lm

    adapter = export(tiny_run, tmp_path / "adapter")
    assert adapter["kind"] == "adapter" and adapter["base"] == tiny_base
    half = export(tiny_run, tmp_path / "half", bf16=True)
    assert half["kind"] == "bf16 adapter" and half["mb"] < adapter["mb"]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file() and (tmp_path / "adapter" / "README.md").is_file()
    tuned, tok = load_causal_lm(GeneratorConfig(model=tiny_base, adapter=str(tmp_path / "adapter"), precision="fp32"))
    merged = export(tiny_run, tmp_path / "merged", merge=True)
    assert merged["kind"] == "merged model" and not (tmp_path / "merged.partial").exists()
    alone, _ = load_causal_lm(GeneratorConfig(model=str(tmp_path / "merged"), precision="fp32"))
    base, _ = load_causal_lm(GeneratorConfig(model=tiny_base, precision="fp32"))
    assert torch.allclose(_logits(tuned, tok), _logits(alone, tok), atol=1e-4)  # the adapter, folded in
    assert not torch.allclose(_logits(base, tok), _logits(alone, tok), atol=1e-3)  # and it changed the model


def test_export_refuses_what_it_cannot_do(tiny_run, tmp_path):
    from finetune import export

    with pytest.raises(ConfigError, match="no adapter here"):
        export(tmp_path, tmp_path / "x")
    with pytest.raises(ConfigError, match="--quantize applies to merged weights — add --merge"):
        export(tiny_run, tmp_path / "x", quantize="nf4")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty — pass another --out"):
        export(tiny_run, tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_export_quantized_to_nf4_loads_and_generates(tiny_run, tmp_path):
    pytest.importorskip("bitsandbytes")
    from finetune import export
    from ragqa.generators import load_causal_lm

    r = export(tiny_run, tmp_path / "nf4", merge=True, quantize="nf4")
    config = json.loads((tmp_path / "nf4" / "config.json").read_text())
    assert r["kind"] == "merged nf4 model" and config["quantization_config"]["bnb_4bit_quant_type"] == "nf4"
    model, tok = load_causal_lm(GeneratorConfig(model=str(tmp_path / "nf4"), precision="fp32"))
    assert _logits(model, tok).isfinite().all()


@pytest.mark.slow
def test_accelerate_launch_runs_the_same_command_on_two_cpu_processes(tiny_base, tmp_path):
    """The multi-GPU path (data parallel) exercised on CPU: two processes, gloo, one adapter written."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    if shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("accelerate's launcher is not installed")
    data = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(16)])
    config = tmp_path / "train.toml"
    config.write_text("[train]\nmax_steps = 3\nbatch_size = 2\nsmoke_steps = 0\nlora_r = 4\nsave_steps = 100\n"
                      "[generator]\nprecision = \"fp32\"\n")
    root = Path(__file__).resolve().parents[1]
    launch = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
              str(root / "configs" / "accelerate" / "cpu2.yaml"), "-m", "ragqa", "train", "--data", str(data),
              "--base", tiny_base, "--out", str(tmp_path / "run"), "--config", str(config), "-q"]
    env = {**os.environ, "RAGQA_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=600, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 3 and (tmp_path / "run" / "adapter_model.safetensors").is_file()
    assert metrics["tokens_seen"] > 0 and "3 steps" in done.stdout  # one summary line: rank 0 speaks


def test_mixed_precision_is_chosen_by_config(tmp_path):
    import torch

    from finetune._train import _arguments

    assert _arguments(TrainConfig(mixed_precision="bf16"), tmp_path, False, False).bf16 is True
    assert _arguments(TrainConfig(mixed_precision="no"), tmp_path, False, False).bf16 is False
    cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert _arguments(TrainConfig(), tmp_path, False, False).bf16 is cuda_bf16  # auto: bf16 on CUDA only
    with pytest.raises(ConfigError, match="train.mixed_precision='fp8': use 'auto', 'bf16' or 'no'"):
        TrainConfig(mixed_precision="fp8")


def test_the_loss_from_labelled_logits_alone_equals_the_models_loss_over_all_logits(tiny_base):
    """The collator asks for logits at labelled positions only; loss and gradients must not change."""
    import torch
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq

    from finetune._train import loss_at_labelled_positions, make_collator

    tok = tokenizer_of(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    long_prompt = chat(5)
    long_prompt[1] = {**long_prompt[1], "content": "Some context. " * 9 + long_prompt[1]["content"]}
    features = [encode(m, tok, {tok.eos_token_id}) for m in (chat(1), long_prompt, chat(22))]
    full = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=IGNORE)(features)  # all logits, all labels
    batch = make_collator(tok)(features)
    keep = batch.pop("logits_to_keep")
    assert 0 < len(keep) < batch["input_ids"].shape[1] - 1  # the prompts' positions are left out
    assert (batch["labels"][:, 1:] != IGNORE).sum() == (full["labels"][:, 1:] != IGNORE).sum()  # what the Trainer counts
    labels, all_labels = batch.pop("labels"), full["labels"]
    batch.pop("length", None)

    def loss_and_grads(compute):
        model.zero_grad()
        loss = compute()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    reference = loss_and_grads(lambda: model(**batch, labels=all_labels).loss)
    ours = loss_and_grads(lambda: loss_at_labelled_positions(model(**batch, logits_to_keep=keep), labels))
    assert torch.allclose(ours[0], reference[0], atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours[1], reference[1]))
    n = (all_labels[:, 1:] != IGNORE).sum()  # token-sum over the count the Trainer passes across accumulation
    summed = loss_at_labelled_positions(model(**batch, logits_to_keep=keep), labels, num_items_in_batch=n * 2)
    assert torch.allclose(summed * 2, reference[0], atol=1e-5)


def test_qlora_trains_a_lora_over_a_double_quantised_4bit_base(tiny_base, tmp_path):
    """On CUDA where there is one (the device check runs this file there), else on bitsandbytes' CPU
    kernels: the base is NF4 with double quantisation, the LoRA gets gradients and the loss falls."""
    pytest.importorskip("bitsandbytes")
    from finetune._train import load_for_training

    model, _ = load_for_training(tiny_base, TrainConfig(method="qlora"), GeneratorConfig(precision="fp32"))
    quant = model.get_base_model().config.quantization_config
    assert quant.bnb_4bit_quant_type == "nf4" and quant.bnb_4bit_use_double_quant
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    assert model.get_base_model().model.gradient_checkpointing  # on by default for the large-model path
    del model
    data = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(40)])
    metrics = train(data, tiny_base, tmp_path / "run", cfg(method="qlora", max_steps=20, learning_rate=3e-2),
                    progress=False)
    assert metrics["last_loss"] < 0.8 * metrics["first_loss"]
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


def test_training_can_continue_from_an_adapter_with_its_rank_and_weights(tiny_base, tiny_run, tmp_path):
    from safetensors.torch import load_file

    from finetune._train import load_for_training

    model, _ = load_for_training(tiny_base, cfg(init_adapter=str(tiny_run), lora_r=16).train, GeneratorConfig(precision="fp32"))
    start = {n.replace(".default", ""): p for n, p in model.named_parameters() if "lora_" in n}
    saved = load_file(str(tiny_run / "adapter_model.safetensors"))
    assert start and all(p.requires_grad for p in start.values())
    assert all(torch_equal(start[n], saved[n]) for n in saved)  # the run's weights, not a fresh init
    assert next(p for n, p in start.items() if "lora_A" in n).shape[0] == 4  # its rank, not the config's 16
    data = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(16)])
    fresh = train(data, tiny_base, tmp_path / "fresh", cfg(max_steps=2, logging_steps=1), progress=False)
    more = train(data, tiny_base, tmp_path / "more", cfg(max_steps=2, logging_steps=1, init_adapter=str(tiny_run)),
                 progress=False)
    # it starts where the adapter left off (16.3 fresh, 8.1 from the adapter whose last loss was 9.3)
    assert more["first_loss"] < 0.75 * fresh["first_loss"]
    with pytest.raises(ConfigError, match="init_adapter continues a LoRA"):
        cfg(init_adapter=str(tiny_run), method="full")


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a.float(), b.float())


def test_each_pair_is_encoded_from_its_own_row_and_long_ones_are_left_out(tiny_base):
    from finetune._prefer import encode_pairs

    tok = tokenizer_of(tiny_base)
    rows = [{"split": "train" if i < 3 else "validation", "prompt": chat(i)[:-1], "chosen": f"Box {i} is {COLOURS[i]}.",
             "rejected": f"Box {i} is {COLOURS[i + 3]}."} for i in range(5)]
    rows[1]["chosen"] += " It is" + " very" * 600 + " red."
    train, val = encode_pairs(rows, tok, stop_ids(tok), max_length=512)
    assert (len(train), len(val)) == (2, 2)
    for (chosen, rejected), i in zip(train + val, (0, 2, 3, 4)):  # a lazily built pair read the last row for all
        assert f"box {i} is {COLOURS[i]}" in tok.decode(chosen["input_ids"]).lower()
        assert f"box {i} is {COLOURS[i + 3]}" in tok.decode(rejected["input_ids"]).lower()


def test_preferences_move_the_adapter_toward_the_chosen_replies_with_the_replayed_ones(tiny_base, tiny_run, tmp_path):
    from finetune import prefer
    from finetune._records import Record
    from ragqa.config import PreferConfig

    pairs = []
    for i in range(6):  # the colour the source gives, preferred to another; validation: the same pairs
        colour, other = COLOURS[i % len(COLOURS)], COLOURS[(i + 3) % len(COLOURS)]
        pairs += [{"split": split, "kind": "factual", "prompt": chat(i)[:-1], "chosen": f"Box {i} is {colour}.",
                   "rejected": f"Box {i} is {other}."} for split in ("train", "validation")]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    replies = tmp_path / "replies"
    replies.mkdir()
    records = [Record(f"Is box {i} red?", "Yes [1].", kind, "deterministic", "d", "d.md", "T", "c", quote=f"Box {i} is red.",
                      sources=[], abstain=abstain) for i, (kind, abstain) in
               enumerate([("judgmental", False), ("judgmental", False), ("judgmental", True), ("factual", False)])]
    (replies / "train.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    config = cfg(init_adapter=tiny_run)
    config.generator.model, config.prefer = tiny_base, PreferConfig(learning_rate=3e-2, epochs=3, grad_accum=2)
    m = prefer(tmp_path / "pairs.jsonl", tmp_path / "pref", config, replay=replies, progress=False)
    # the reference is the adapter it starts from: no pair is preferred yet, and after training all are
    assert m["validation_accuracy_before"] == 0 and m["epochs"][-1]["validation_accuracy"] == 1
    assert m["train_pairs"] == m["validation_pairs"] == 6 and m["replayed"] == 2  # answering yes/no replies only
    assert (tmp_path / "pref" / "adapter_config.json").is_file()
    assert len(m["log"]) == 9 and m["log"][-1]["margin"] > 0  # 3 steps of 2 pairs an epoch; chosen ahead by the end
    assert (tmp_path / "pref" / "loss.png").stat().st_size > 0
    card = (tmp_path / "pref" / "README.md").read_text()
    assert "6 train, 6 validation" in card and "validation preference accuracy 0.0 → " in card
    with pytest.raises(ConfigError, match="no pairs file — make one: ragqa pairs"):
        prefer(tmp_path / "none.jsonl", tmp_path / "x", config, progress=False)
