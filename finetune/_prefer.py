"""Preference optimisation on a tuned model's own replies: DPO (Rafailov et al., 2023) with the chosen
reply's log-likelihood added, as RPO does (Pang et al., 2024).

Rejection sampling (``finetune/_replies.py``) trains on right replies only; preferences also say which
replies are wrong. ``preference_pairs`` has the model answer each answerable train and validation prompt
greedily and ``data.reply_samples`` times sampled, shapes and judges every reply as ``ragqa replies`` does
(verdict, number, cosine to the oracle quote), and pairs the best right reply (chosen) with the worst wrong
one (rejected). ``prefer`` trains the model's adapter on those pairs, its reference log-probabilities taken
before the first step. Each pair's loss can be joined by the log-likelihood of one *replayed* right reply:
what the pairs must not move. Measured on SmolLM2-135M with the shipped adapter: pairs on free-form
questions alone turned two of QASPER dev's four "Yes" verdicts into "No"; replaying the recipe's own right
yes/no replies held them (README, "Preferences with the verdicts held").
"""
from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import replace
from difflib import SequenceMatcher
from pathlib import Path

from ragqa.config import Config, resolve_adapter
from ragqa.errors import ConfigError
from finetune._replies import judge, sample_replies, shaped_replies
from finetune._select import load_pool


def preference_pairs(data, out, config: Config | None = None, generator=None, embedder=None,
                     progress: bool = True) -> dict:
    """Write the chosen/rejected pairs of dataset folder ``data`` to the JSONL file ``out``; returns the funnel."""
    from ragqa.generators import load_generator

    config, data, out = config or Config(), Path(data), Path(out)
    splits, _ = load_pool(data)
    generator = generator or load_generator(config.generator)
    if embedder is None:
        from retrieval.embed import load_embedder

        embedder = load_embedder(config.embedder)
    skip, funnel, rows = set(config.prefer.skip_kind_list), Counter(), []
    for name in ("train", "validation"):
        todo = [r for r in splits[name] if not r.abstain and r.kind not in skip]
        for record, replies in zip(todo, sample_replies(todo, generator, config.data, progress)):
            pair, why = _pair(record, replies, embedder, config)
            funnel[why or "paired"] += 1
            if pair:
                rows.append({"split": name, "kind": record.kind, "prompt": record.messages()[:-1], **pair})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return {"pairs": Counter(r["split"] for r in rows), "funnel": dict(funnel)}


def _pair(record, replies: list[str], embedder, config: Config) -> tuple[dict | None, str]:
    """The best right and the worst wrong of ``replies`` as answer time shows them, or None and why not."""
    shaped = shaped_replies(record, replies, config.answer)
    verdicts = judge(record, shaped, embedder, config.data.reply_min_similarity)
    right = sorted((cos, s) for s, (why, cos) in zip(shaped, verdicts) if not why)
    # a reply that says nothing once shaped is rejected as the model wrote it
    wrong = sorted((cos, s or " ".join(raw.split()[:60])) for s, raw, (why, cos) in zip(shaped, replies, verdicts) if why)
    if not right or not wrong:
        return None, "none_right" if not right else "none_wrong"
    chosen, rejected = right[-1][1], wrong[0][1]
    if SequenceMatcher(None, chosen, rejected).ratio() >= config.prefer.near_identical:
        return None, "near_identical"
    return {"chosen": chosen, "rejected": rejected, "margin": right[-1][0] - wrong[0][0]}, ""


def prefer(pairs, out, config: Config | None = None, replay=None, progress: bool = True, say=None,
           command: str = "") -> dict:
    """Train the adapter (``train.init_adapter``, by default the shipped one) on the pairs of JSONL file
    ``pairs`` into run folder ``out``; ``replay``: a dataset folder whose right replies of
    ``prefer.replay_kinds`` are learned beside the pairs. Writes the adapter, ``metrics.json``, ``loss.png``
    and a card; returns the metrics."""
    import torch

    from finetune._train import encode, load_for_training, peak_rss_mb, stop_ids, swap_in

    config, out = config or Config(), Path(out)
    say = say or (lambda line: None)
    pc, tc = config.prefer, replace(config.train, init_adapter=config.train.init_adapter or "auto")
    model, tokenizer = load_for_training(config.generator.model, tc, config.generator)
    stops = stop_ids(tokenizer, model)
    train, val = encode_pairs(_read_pairs(Path(pairs)), tokenizer, stops, pc.max_length)
    if not train:
        raise ConfigError(f"{pairs}: no train pair within prefer.max_length={pc.max_length} tokens — make pairs first: "
                          "ragqa pairs --data data/NAME --out data/NAME-pairs.jsonl")
    replayed = [encode(m, tokenizer, stops) for m in _replay_chats(replay, pc.replay_kind_list)] if replay else []
    replayed = [e for e in replayed if e["length"] <= pc.max_length]
    say(f"{len(train)} train and {len(val)} validation pairs, {len(replayed)} replayed replies")
    torch.manual_seed(tc.seed)  # LoRA dropout: the same run twice gives the same adapter
    model.eval()
    with torch.no_grad():  # the reference: the adapter as it starts, kept with each pair
        train = [(c, r, _logp(model, tokenizer, [c, r])[0]) for c, r in train]
        val = [(c, r, _logp(model, tokenizer, [c, r])[0]) for c, r in val]
    before, started = _accuracy(model, tokenizer, val, pc), time.time()
    history, log = _optimise(model, tokenizer, train, val, replayed, pc, tc.seed, progress)
    model.peft_config["default"].base_model_name_or_path = config.generator.model
    metrics = {"base": config.generator.model, "pairs": str(pairs), "replay": str(replay or ""),
               "train_pairs": len(train), "validation_pairs": len(val), "replayed": len(replayed),
               # the folder, not "auto": the shipped adapter changes from release to release
               "init_adapter": resolve_adapter(config.generator.model, tc.init_adapter) or tc.init_adapter,
               "validation_accuracy_before": before, "epochs": history,
               "seconds": round(time.time() - started), "peak_rss_mb": round(peak_rss_mb()), "config": vars(pc),
               "log": log}
    swap_in(model, out)  # an interrupted save leaves the run folder's previous adapter whole
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    plot_prefer(metrics, out / "loss.png")
    (out / "README.md").write_text(prefer_card(metrics, out, command))
    return metrics


def plot_prefer(metrics: dict, path: Path) -> None:
    """Each step's loss and reward margin, and the held-out preference accuracy after each epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, margin_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    steps = [h["step"] for h in metrics["log"]]
    loss_ax.plot(steps, [h["loss"] for h in metrics["log"]], label="train (DPO + NLL)")
    loss_ax.set(xlabel="step", ylabel="loss", title=f"prefer on {Path(metrics['base']).name}")
    accuracy = [(e["step"], e["validation_accuracy"]) for e in [{"step": 0, "validation_accuracy": metrics[
        "validation_accuracy_before"]}] + metrics["epochs"] if e["validation_accuracy"] is not None]
    if accuracy:
        acc_ax = loss_ax.twinx()
        acc_ax.plot(*zip(*accuracy), "o-", color="tab:orange", label="validation preference accuracy")
        acc_ax.set(ylim=(0, 1), ylabel="validation preference accuracy")
    margin_ax.plot(steps, [h["margin"] for h in metrics["log"]])
    margin_ax.axhline(0, color="grey", linewidth=0.5)
    margin_ax.set(xlabel="step", ylabel="chosen − rejected log-prob, vs reference", title="reward margin")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def prefer_card(metrics: dict, out: Path, command: str) -> str:
    epochs, config = metrics["epochs"], metrics["config"]
    accuracy = " → ".join(str(a) for a in [metrics["validation_accuracy_before"]] + [e["validation_accuracy"] for e in epochs])
    lines = [f"# {out.name}: preference-tuned adapter for {metrics['base']}", "",
             f"Trained with `{command or 'ragqa prefer'}`, from the adapter `{metrics['init_adapter']}`.", "",
             f"- pairs: `{metrics['pairs']}` ({metrics['train_pairs']} train, {metrics['validation_pairs']} validation)",
             f"- replayed right replies: {metrics['replayed']}" + (f" from `{metrics['replay']}`" if metrics["replay"] else ""),
             f"- DPO β {config['beta']}, NLL weight {config['nll_weight']}, learning rate {config['learning_rate']}, "
             f"{len(epochs)} epochs of {config['grad_accum']} pairs a step ({epochs[-1]['step'] if epochs else 0} steps)",
             "- loss by epoch: " + ", ".join(f"{e['loss']:.3f}" for e in epochs)
             + f"; validation preference accuracy {accuracy}",
             f"- {metrics['seconds']} s, peak memory {metrics['peak_rss_mb']} MB RSS", "",
             f"Use it: `ragqa ask \"…\" --adapter {out}`. The adapter holds weights, not documents; the documents",
             "its questions came from are listed in the card (README.md) of the dataset `ragqa pairs` read."]
    return "\n".join(lines) + "\n"


def encode_pairs(rows: list[dict], tokenizer, stops: set[int], max_length: int) -> tuple[list, list]:
    """The train and validation pairs as (chosen, rejected) encoded chats; pairs over ``max_length`` left out."""
    from finetune._train import encode

    def chat(row: dict, reply: str) -> dict:
        return encode(row["prompt"] + [{"role": "assistant", "content": row[reply]}], tokenizer, stops)

    pairs = {"train": [], "validation": []}
    for row in rows:
        chosen, rejected = chat(row, "chosen"), chat(row, "rejected")
        if max(chosen["length"], rejected["length"]) <= max_length:
            pairs[row["split"]].append((chosen, rejected))
    return pairs["train"], pairs["validation"]


def _optimise(model, tokenizer, train, val, replayed, pc, seed: int, progress: bool) -> tuple[list[dict], list[dict]]:
    """``prefer.epochs`` passes over the pairs in a seeded order, ``prefer.grad_accum`` pairs a step.
    Returns each epoch's mean loss and validation preference accuracy, and each step's loss and margin."""
    import torch
    from tqdm import tqdm

    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=pc.learning_rate)
    rng, history, log, seen = random.Random(seed), [], [], 0
    model.train()
    for epoch in range(pc.epochs):
        order, losses, margins = list(train), [], []
        rng.shuffle(order)
        for i, pair in enumerate(tqdm(order, disable=not progress, desc=f"prefer, epoch {epoch + 1}", unit="pair")):
            loss, margin = _pair_loss(model, tokenizer, pair, pc)
            if replayed:  # one right reply a pair, cycled
                logp, n = _logp(model, tokenizer, [replayed[seen % len(replayed)]])
                loss = loss - logp[0] / n[0]
            seen += 1
            (loss / pc.grad_accum).backward()
            losses.append(loss.item())
            margins.append(margin)
            if (i + 1) % pc.grad_accum == 0 or i == len(order) - 1:
                optimiser.step()
                optimiser.zero_grad()
                n = (i % pc.grad_accum) + 1  # the pairs of this step
                log.append({"step": len(log) + 1, "loss": sum(losses[-n:]) / n, "margin": sum(margins[-n:]) / n})
        history.append({"epoch": epoch + 1, "step": len(log), "loss": sum(losses) / len(losses),
                        "validation_accuracy": _accuracy(model, tokenizer, val, pc)})
    return history, log


def _pair_loss(model, tokenizer, pair, pc):
    """DPO's loss on one (chosen, rejected, reference) pair plus ``prefer.nll_weight`` times the chosen
    reply's mean negative log-likelihood; and the margin (chosen minus rejected, each against the reference)."""
    import torch.nn.functional as F

    chosen, rejected, reference = pair
    logp, n = _logp(model, tokenizer, [chosen, rejected])
    margin = (logp[0] - reference[0]) - (logp[1] - reference[1])
    return -F.logsigmoid(pc.beta * margin) + pc.nll_weight * (-logp[0] / n[0]), margin.item()


def _accuracy(model, tokenizer, val, pc) -> float | None:
    """Share of validation pairs whose chosen reply gained on the rejected one (None without pairs)."""
    import torch

    if not val:
        return None
    model.eval()
    with torch.no_grad():
        margins = [_pair_loss(model, tokenizer, p, pc)[1] for p in val]
    model.train()
    return round(sum(m > 0 for m in margins) / len(margins), 3)


def _logp(model, tokenizer, batch: list[dict]):
    """Summed log-probability of each example's labelled (reply) tokens, and how many there are: padded by
    ``make_collator``, which asks the model for logits at the reply's positions only, as training does."""
    import torch

    from finetune._train import IGNORE, make_collator

    padded = make_collator(tokenizer)([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in batch])
    padded = {k: v.to(model.device) for k, v in padded.items()}
    labels = padded.pop("labels")[:, 1:]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=model.device.type == "cpu"):
        logits = model(**padded).logits.float()
    known = labels != IGNORE
    token_logp = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token_logp * known).sum(1), known.sum(1)


def _read_pairs(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"{path}: no pairs file — make one: ragqa pairs --data data/NAME --out {path}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, row in enumerate(rows):
        if not {"prompt", "chosen", "rejected", "split"} <= set(row) or row["split"] not in ("train", "validation"):
            raise ConfigError(f"{path} row {i}: needs prompt, chosen, rejected and split (train or validation), "
                              "as ragqa pairs writes them")
    return rows


def _replay_chats(data, kinds: list[str]) -> list[list[dict]]:
    """The train split's chats of ``kinds`` (all kinds when empty) that answer, as `ragqa replies` wrote them."""
    splits, _ = load_pool(Path(data))
    return [r.messages() for r in splits["train"] if not r.abstain and (not kinds or r.kind in kinds)]
