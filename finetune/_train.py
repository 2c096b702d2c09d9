"""``train``: LoRA / QLoRA / full fine-tuning of a causal LM on a chat-format dataset.

peft + the transformers ``Trainer``, on the base layer's one model loader. The prompt of every
example is built exactly as the generator builds it at answer time (the model's chat template, or
``plain_prompt`` for template-less base models), and only the reply's tokens carry a loss.

A run folder ``runs/NAME`` holds the adapter at its top (``ragqa ask --adapter runs/NAME``), the
checkpoints, ``metrics.json``, ``loss.png`` and a card. An interrupted run leaves the previous
adapter and every complete checkpoint usable; ``--resume`` continues from the last complete one.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from ragqa.config import Config, GeneratorConfig, resolve_adapter
from ragqa.errors import ConfigError, RagqaError
from ragqa.generators._transformers import plain_prompt, stop_ids

IGNORE = -100  # label of tokens without loss (prompt, context, padding)


class TrainingError(RagqaError):
    """A run that cannot start or must stop, with what to do about it."""


# ---------------------------------------------------------------------------------------------- data

def load_chats(data) -> tuple[dict, list[str]]:
    """Splits of a ``ragqa gen-data``/``select`` folder (or any ``save_to_disk`` DatasetDict, or one
    JSONL file) as ``{split: [messages, ...]}``, and the file names of the training split's source
    documents (for the run card; empty when the rows do not name them); a clear error for anything
    unusable."""
    path = Path(data)
    if path.is_file() and path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        splits = {"train": rows}
    elif (path / "dataset_dict.json").is_file():
        from datasets import load_from_disk

        splits = {name: list(split) for name, split in load_from_disk(str(path)).items()}
    else:
        raise ConfigError(f"{path}: no dataset here — give a `ragqa gen-data` folder (data/NAME) or a .jsonl "
                          "file of chats with a `messages` column")
    chats = {}
    for name, rows in splits.items():
        if rows and "messages" not in rows[0]:
            raise ConfigError(f"{path} [{name}]: no `messages` column (fields: {', '.join(sorted(rows[0]))}) — "
                              "each row needs messages = [{role, content}, ...] ending with the assistant's reply")
        chats[name] = [r["messages"] for r in rows]
    if not chats.get("train"):
        raise ConfigError(f"{path}: the train split is empty — generate data first: ragqa gen-data --index NAME --out {path}")
    for name, rows in chats.items():
        for i, messages in enumerate(rows):
            if not messages or messages[-1].get("role") != "assistant" or not str(messages[-1].get("content", "")).strip():
                raise ConfigError(f"{path} [{name}] row {i}: the last message must be the assistant's non-empty reply")
    return chats, sorted({Path(r["source"]).name for r in splits["train"] if r.get("source")})


def encode(messages: list[dict], tokenizer, stops: set[int]) -> dict:
    """Token ids and labels of one chat: the prompt as the generator builds it, masked; the reply
    and the token that ends it, learned."""
    if tokenizer.chat_template:
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt):
            raise TrainingError("the chat template renders a prompt that is not a prefix of the whole chat — "
                                "the reply cannot be masked; use a model whose template appends turns")
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        reply = tokenizer(full[len(prompt):], add_special_tokens=False).input_ids
    else:  # template-less base model: the plain Question/Answer layout the generator uses for it
        prompt_ids = tokenizer(plain_prompt(messages[:-1])).input_ids
        reply = tokenizer(" " + messages[-1]["content"].strip(), add_special_tokens=False).input_ids
    ends = [i for i, t in enumerate(reply) if t in stops]
    reply = reply[:ends[0] + 1] if ends else reply + [tokenizer.eos_token_id]  # learn to stop, nothing after
    return {"input_ids": prompt_ids + reply, "labels": [IGNORE] * len(prompt_ids) + reply,
            "length": len(prompt_ids) + len(reply)}


def encode_split(chats: list, tokenizer, stops: set[int], max_length: int) -> tuple[list[dict], int]:
    """Encoded examples that fit ``max_length`` and how many did not (they are dropped, not cut:
    a cut would lose the reply or the context it quotes)."""
    examples = [encode(m, tokenizer, stops) for m in chats]
    kept = [e for e in examples if e["length"] <= max_length]
    return kept, len(examples) - len(kept)


def preflight(chats: dict, tokenizer, stops: set[int], config) -> dict:
    """Encode every split and refuse data that would train badly; returns the datasets' inputs."""
    if tokenizer.eos_token_id is None:
        raise TrainingError("the tokenizer has no EOS token: the model could not learn to stop — set eos_token")
    encoded, dropped = {}, {}
    for name, rows in chats.items():
        encoded[name], dropped[name] = encode_split(rows, tokenizer, stops, config.max_length)
    share = dropped["train"] / max(1, len(chats["train"]))
    if share > config.max_dropped_share:
        raise TrainingError(f"{share:.0%} of the training examples exceed train.max_length={config.max_length} tokens "
                            f"(limit {config.max_dropped_share:.0%}) — raise --max-length, or lower "
                            "answer.context_tokens / answer.focus_tokens when generating the data")
    if not encoded["train"]:
        raise TrainingError("no training example fits train.max_length — raise --max-length")
    for e in encoded["train"]:
        if e["labels"][-1] not in stops:
            raise TrainingError("an example does not end with EOS: the model would not learn to stop")
    return {"encoded": encoded, "dropped": dropped, "template": "chat template" if tokenizer.chat_template
            else "plain Question/Answer layout (the model has no chat template)"}


# --------------------------------------------------------------------------------------------- model

def target_modules(model, wanted: str) -> list[str]:
    """Module names LoRA adapts: ``wanted``, or every Linear of the attention and MLP blocks
    (q/k/v/o and gate/up/down in Llama-family models), whatever the architecture calls them."""
    import torch

    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    names -= {"lm_head", "embed_out", "score", "classifier"}
    if wanted != "auto":
        asked = [n.strip() for n in wanted.split(",") if n.strip()]
        if unknown := set(asked) - names:
            raise ConfigError(f"train.target_modules: {sorted(unknown)} are not Linear modules of this model — "
                              f"use some of {', '.join(sorted(names))}")
        return asked
    return sorted(names)


def load_for_training(base: str, config, generator: GeneratorConfig):
    """The base model (4-bit for QLoRA), with a fresh LoRA unless ``full`` or ``init_adapter`` (that
    adapter, trainable); its tokenizer."""
    import torch

    from ragqa.generators import load_causal_lm

    precision = "nf4" if config.method == "qlora" else generator.precision
    if precision == "int8":
        raise ConfigError("precision int8 cannot be trained — use fp32/bf16 (lora) or --method qlora")
    gen = GeneratorConfig(**{**asdict(generator), "model": base, "adapter": config.init_adapter, "precision": precision})
    if config.init_adapter and not resolve_adapter(base, config.init_adapter):
        raise ConfigError(f"train.init_adapter={config.init_adapter!r}: no shipped adapter for {base} — give a run folder")
    model, tokenizer = load_causal_lm(gen, trainable=True)
    model.config.use_cache = False
    # QLoRA needs no preparation beyond LoRA's: peft's prepare_model_for_kbit_training would upcast every
    # unquantised weight to fp32 for fp16 stability that bf16 compute does not need (the frozen embeddings
    # and lm_head of a Qwen2.5-7B: +2.2 GB, and an fp32 residual stream that doubles the checkpoints)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if config.method == "full" or config.init_adapter:
        return model, tokenizer
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=target_modules(model, config.target_modules))
    torch.manual_seed(config.seed)  # the LoRA's random init: the same run twice gives the same adapter
    model = get_peft_model(model, lora)
    return model, tokenizer


# ---------------------------------------------------------------------------------------------- loss

def labelled_positions(labels):
    """Positions whose logits predict a labelled token in any row of the batch (the logit at p
    predicts token p + 1): the only ones the loss reads."""
    return (labels[:, 1:] != IGNORE).any(0).nonzero().squeeze(1)


def make_collator(tokenizer):
    """Right-padded batches that ask the model for logits at the labelled positions only, with
    the labels of those positions (shifted by one, as a causal LM's are): the prompt and retrieved
    context (~90% of a RAFT example) need no projection onto the vocabulary, whose float logits
    were most of the memory of a step (4 × 2,048 × 152k for a Qwen2.5-7B: 22.8 against 10.7 GB)."""
    import torch
    from transformers import DataCollatorForSeq2Seq

    class LabelledLogits(DataCollatorForSeq2Seq):
        def __call__(self, features, return_tensors=None):
            batch = super().__call__(features, return_tensors)
            labels = batch["labels"]
            keep = labelled_positions(labels)
            batch["logits_to_keep"] = keep
            batch["labels"] = torch.cat([torch.full_like(labels[:, :1], IGNORE), labels[:, keep + 1]], dim=1)
            return batch

    return LabelledLogits(tokenizer, padding=True, label_pad_token_id=IGNORE)


def loss_at_labelled_positions(outputs, labels, num_items_in_batch=None):
    """The causal LM loss of the logits ``make_collator`` asked for against its labels: the same
    value as the model's own loss over all logits (token mean, or token sum over the
    ``num_items_in_batch`` the Trainer counts across gradient accumulation). Computed on the
    collator's side, the positions cost the GPU no wait here (a ``nonzero`` would)."""
    import torch

    logits = outputs["logits"].float()
    flat = logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1).to(logits.device)
    if num_items_in_batch is None:
        return torch.nn.functional.cross_entropy(*flat, ignore_index=IGNORE)
    return torch.nn.functional.cross_entropy(*flat, ignore_index=IGNORE, reduction="sum") / num_items_in_batch


def trainable_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


_WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "adapter_model.bin", "pytorch_model.bin")


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints a kill did not tear, oldest first: the Trainer writes ``trainer_state.json``
    after the weights and the optimizer, so one with weights and a readable state is whole."""
    def whole(path: Path) -> bool:
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            return False
        return any((path / f).is_file() for f in _WEIGHTS)

    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and whole(p)]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


# ----------------------------------------------------------------------------------------- callbacks

def _callbacks(config, tokenizer, stops: set[int], smoke_chat: list[int] | None):
    """Guards and measurements around the Trainer's loop."""
    from transformers import TrainerCallback

    class Guards(TrainerCallback):
        """Stop early, with the reason, instead of training for hours to no effect."""

        def __init__(self):
            self.checked_grads = False
            self.smoke: dict = {}

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            if self.checked_grads or model is None:
                return
            self.checked_grads = True
            if gradient_norm(model) == 0.0:
                # seen with bitsandbytes 4-bit on CPU: a model that generated before training gave its
                # LoRA no gradient, and the loss stayed flat with no error
                raise TrainingError("the first step gave the trainable weights no gradient — the run would not learn. "
                                    "Load the model fresh for training (do not generate with it first); "
                                    "with --method qlora on CPU try --method lora")

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if not config.smoke_steps or state.global_step != config.smoke_steps or smoke_chat is None:
                return
            self.smoke = smoke_generate(model, tokenizer, smoke_chat, stops)
            if not self.smoke["stopped"]:
                raise TrainingError(f"smoke test after {state.global_step} steps: the model's reply did not end with EOS "
                                    f"within {self.smoke['max_new_tokens']} tokens ({self.smoke['text'][:80]!r}…) — check "
                                    "the chat template and that the data's replies end the turn; or set train.smoke_steps = 0")

    class Meter(TrainerCallback):
        """Tokens per second (non-padding tokens) and peak memory, added to every log line."""

        def __init__(self):
            self.started, self.step_ends = None, []

        def on_train_begin(self, args, state, control, **kwargs):
            self.started, self.tokens0 = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()  # the step's kernels done, not only queued
            self.step_ends.append(time.perf_counter())

        def step_seconds(self) -> list[float]:
            """Wall time of each optimizer step; the first holds the warm-up."""
            ends = [self.started, *self.step_ends]
            return [round(b - a, 4) for a, b in zip(ends, ends[1:])]

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is None or self.started is None:
                return
            seconds = time.perf_counter() - self.started
            logs["tokens_per_s"] = round((state.num_input_tokens_seen - self.tokens0) / max(seconds, 1e-9), 1)
            logs["peak_rss_mb"] = round(peak_rss_mb())
            if (gpu := peak_gpu_mb()) is not None:
                logs["peak_gpu_mb"] = round(gpu)

    return Guards(), Meter()


def gradient_norm(model) -> float:
    """Sum of the trainable weights' gradient norms (0.0 when none has a gradient)."""
    return float(sum(p.grad.detach().float().norm() for p in model.parameters()
                     if p.requires_grad and p.grad is not None))


def smoke_generate(model, tokenizer, prompt_ids: list[int], stops: set[int], max_new_tokens: int = 96) -> dict:
    """Greedy reply to one prompt: did it end with a stop token?"""
    import torch

    was_training = model.training
    model.eval()
    ids = torch.tensor([prompt_ids], device=model.device)
    try:
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=sorted(stops), use_cache=True,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    finally:
        model.train(was_training)
    new = out[0, ids.shape[1]:].tolist()
    return {"stopped": any(t in stops for t in new), "tokens": len(new), "max_new_tokens": max_new_tokens,
            "text": tokenizer.decode(new, skip_special_tokens=True)}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_gpu_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


# ------------------------------------------------------------------------------------------------ run

def train(data, base: str, out, config: Config | None = None, resume: bool = False, progress: bool = True,
          command: str = "") -> dict:
    """Fine-tune ``base`` on the chats in ``data`` into run folder ``out``; returns the metrics.

    The adapter (or, with ``method = full``, the model) is written to ``out`` only when training
    ends, so an interrupted run keeps the previous one; ``resume`` continues from the last
    complete checkpoint in ``out/checkpoints`` with the same data order.
    """
    import torch
    from datasets import Dataset
    from transformers import Trainer

    config, out = config or Config(), Path(out)
    tc = config.train
    chats, sources = load_chats(data)
    checkpoint = _claim_run(out, resume)
    model, tokenizer = load_for_training(base, tc, config.generator)
    tokenizer.padding_side = "right"  # labels line up with the tokens; causal attention ignores the pads
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    stops = stop_ids(tokenizer, model)
    checked = preflight(chats, tokenizer, stops, tc)
    encoded = checked["encoded"]
    trainable, total = trainable_parameters(model)
    _say(progress, f"{base}: {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.2f}%, {tc.method}); "
                   f"{len(encoded['train'])} training examples ({checked['dropped']['train']} over {tc.max_length} tokens "
                   f"dropped); prompts in the {checked['template']}")
    validation = (encoded.get("validation") or [])[: tc.eval_samples or None]
    smoke = _smoke_prompt(encoded.get("validation") or encoded["train"])
    callbacks = _callbacks(tc, tokenizer, stops, smoke)
    args = _arguments(tc, out, bool(validation), progress)
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(encoded["train"]),
                      eval_dataset=Dataset.from_list(validation) if validation else None,
                      data_collator=make_collator(tokenizer), compute_loss_func=loss_at_labelled_positions,
                      callbacks=list(callbacks))
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except (torch.OutOfMemoryError, MemoryError):
        raise TrainingError(f"out of memory at batch {tc.batch_size} × up to {tc.max_length} tokens — lower "
                            "--batch-size (raise train.grad_accum to keep the effective batch), set "
                            "train.gradient_checkpointing = true, lower --max-length, or use --method qlora") from None
    metrics = _metrics(trainer, result, tc, base, data, checked, trainable, total, callbacks[0].smoke,
                       time.perf_counter() - started)
    metrics["sources"] = sources
    metrics["step_seconds"] = callbacks[1].step_seconds()
    if trainer.is_world_process_zero():
        if hasattr(trainer.model, "peft_config"):  # the name the user gave, not the converted cache folder
            trainer.model.peft_config["default"].base_model_name_or_path = base
        _write_run(trainer, tokenizer, out, metrics, config, command)
    return metrics


def _claim_run(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None for a fresh run); refuse to overwrite a run by accident."""
    checkpoints = complete_checkpoints(out / "checkpoints")
    if resume:
        if not checkpoints:
            raise ConfigError(f"{out}: no complete checkpoint to resume from — run without --resume to start")
        return checkpoints[-1]
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} already holds a run — pass --resume to continue it, or another --out")
    return None


def _arguments(tc, out: Path, has_eval: bool, progress: bool):
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=tc.batch_size,
        per_device_eval_batch_size=tc.batch_size, gradient_accumulation_steps=tc.grad_accum,
        learning_rate=tc.learning_rate, num_train_epochs=tc.epochs, max_steps=tc.max_steps or -1,
        warmup_steps=tc.warmup_ratio, lr_scheduler_type="cosine", logging_steps=tc.logging_steps,
        eval_strategy="steps" if has_eval else "no", eval_steps=tc.eval_steps, save_strategy="steps",
        save_steps=tc.save_steps, save_total_limit=2, seed=tc.seed, data_seed=tc.seed,
        # similar lengths in a batch: less padding, the main waste with retrieved contexts of uneven size
        train_sampling_strategy="group_by_length" if tc.group_by_length else "random",
        include_num_input_tokens_seen="non_padding",
        bf16=_bf16_autocast(tc.mixed_precision, cuda), use_cpu=not cuda, report_to="none",
        disable_tqdm=not progress, remove_unused_columns=False, dataloader_num_workers=0)


def _bf16_autocast(mixed_precision: str, cuda: bool) -> bool:
    """Whether to train under bf16 autocast (``train.mixed_precision``)."""
    import torch

    if mixed_precision != "auto":
        return mixed_precision == "bf16"
    return cuda and torch.cuda.is_bf16_supported()


def _smoke_prompt(examples: list[dict]) -> list[int] | None:
    if not examples:
        return None
    e = min(examples, key=lambda e: e["length"])
    return [t for t, label in zip(e["input_ids"], e["labels"]) if label == IGNORE]


def main_process() -> bool:
    """Rank 0 of an ``accelerate launch`` (or the only process): the one that speaks and writes."""
    return os.environ.get("RANK", "0") == "0"


def _say(progress: bool, line: str) -> None:
    if progress and main_process():
        print(line, flush=True)


def _metrics(trainer, result, tc, base, data, checked, trainable, total, smoke, seconds) -> dict:
    history = trainer.state.log_history
    train_logs = [h for h in history if "loss" in h]
    evals = [h for h in history if "eval_loss" in h]
    return {
        "base": base, "data": str(data), "method": tc.method, "steps": trainer.state.global_step,
        "epochs": round(trainer.state.epoch or 0, 3), "train_loss": result.training_loss,
        "first_loss": train_logs[0]["loss"] if train_logs else None,
        "last_loss": train_logs[-1]["loss"] if train_logs else None,
        "eval_loss": evals[-1]["eval_loss"] if evals else None,
        "tokens_seen": trainer.state.num_input_tokens_seen, "seconds": round(seconds, 1),
        "tokens_per_s": round(trainer.state.num_input_tokens_seen / max(seconds, 1e-9), 1),
        "peak_rss_mb": round(peak_rss_mb()), "peak_gpu_mb": peak_gpu_mb(),
        "trainable_parameters": trainable, "parameters": total,
        "examples": {k: len(v) for k, v in checked["encoded"].items()}, "dropped_over_max_length": checked["dropped"],
        "prompt_layout": checked["template"], "smoke": smoke, "config": asdict(tc),
        "log": train_logs, "eval": evals,
    }


def _write_run(trainer, tokenizer, out: Path, metrics: dict, config: Config, command: str) -> None:
    """The adapter (or model) at the top of ``out``, with its metrics, loss curve and card."""
    swap_in(trainer.model, out, tokenizer if config.train.method == "full" else None)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    plot_loss(metrics, out / "loss.png")
    (out / "README.md").write_text(run_card(metrics, out, command))


def swap_in(model, out: Path, tokenizer=None) -> None:
    """Save ``model`` (and ``tokenizer``) to ``out``, swapped in file by file after a complete save: a
    run killed while saving leaves the folder's previous adapter whole."""
    staging = out / ".final"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(staging))
    for f in staging.iterdir():
        os.replace(f, out / f.name)
    staging.rmdir()


def plot_loss(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if metrics["log"]:
        ax.plot([h["step"] for h in metrics["log"]], [h["loss"] for h in metrics["log"]], label="train")
    if metrics["eval"]:
        ax.plot([h["step"] for h in metrics["eval"]], [h["eval_loss"] for h in metrics["eval"]], "o-", label="validation")
    ax.set(xlabel="step", ylabel="loss (reply tokens)", title=f"{metrics['method']} on {Path(metrics['base']).name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_card(metrics: dict, out: Path, command: str) -> str:
    data_card = Path(metrics["data"]) / "README.md"
    sources = metrics.get("sources", [])
    lines = [f"# {out.name}: {metrics['method']} adapter for {metrics['base']}", "",
             f"Trained with `{command or 'ragqa train'}`.", "",
             f"- data: `{metrics['data']}` ({metrics['examples'].get('train', 0)} training examples)",
             f"- steps: {metrics['steps']} ({metrics['epochs']} epochs); loss {_num(metrics['first_loss'])} → "
             f"{_num(metrics['last_loss'])}; validation loss {_num(metrics['eval_loss'])}",
             f"- speed: {metrics['tokens_per_s']} tokens/s{_per_step(metrics.get('step_seconds'))}; peak memory "
             f"{metrics['peak_rss_mb']} MB RSS" + (f", {metrics['peak_gpu_mb']:.0f} MB GPU" if metrics.get("peak_gpu_mb") else ""),
             f"- trainable parameters: {metrics['trainable_parameters']:,} of {metrics['parameters']:,}", "",
             "Use it: `ragqa ask \"…\" --adapter " + str(out) + "`; merge or quantize: `ragqa export --run " + str(out) + "`.",
             "", "The adapter holds weights, not documents. It was trained on questions about:", ""]
    lines += [f"- {s}" for s in sources] or ["- (see the data card)"]
    if data_card.is_file():
        lines += ["", f"Data card: `{data_card}`."]
    return "\n".join(lines) + "\n"


def _per_step(seconds: list[float] | None) -> str:
    """", 0.91 s/step" — the median step after the first, which holds the warm-up."""
    steady = (seconds or [])[1:] or seconds
    return f", {statistics.median(steady):.2f} s/step" if steady else ""


def _num(value) -> str:
    return "–" if value is None else f"{value:.3f}"
