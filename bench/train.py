"""LoRA training speed and memory on CPU: tokens/s and peak RSS for SmolLM2-135M-Instruct.

    python bench/train.py [--data data/NAME] [--steps 6] [--shapes reference,grouped,random]

Each shape trains a fresh LoRA for ``--steps`` steps in its own process (peak RSS is per process)
through ``finetune.train``, the code `ragqa train` runs:

- ``reference``: the shape MACHINE-NOTES measured (batch 4 × 256 tokens, LoRA on q,v; ~170 tokens/s
  on 2 Intel cores, fp32), on synthetic chats cut to 256 tokens; ``reference-bf16``: the same under
  bf16 autocast (``train.mixed_precision = "bf16"``);
- ``grouped`` / ``random``: the real data (``--data``, a gen-data folder), batch 4, LoRA on
  q,k,v,o, batches drawn by length (the default) or at random: the padding the grouping saves.

Writes bench/results/train.json. Set RAGQA_THREADS (2 cores: never beside another model process).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, table, write_result

SHAPES = {  # TrainConfig settings per shape
    "reference": {"target_modules": "q_proj,v_proj", "max_length": 260, "mixed_precision": "no"},
    "reference-bf16": {"target_modules": "q_proj,v_proj", "max_length": 260, "mixed_precision": "bf16"},
    "grouped": {"target_modules": "q_proj,k_proj,v_proj,o_proj", "max_length": 1024},
    "random": {"target_modules": "q_proj,k_proj,v_proj,o_proj", "max_length": 1024, "group_by_length": False},
}


def synthetic(path: Path, n: int = 64) -> Path:
    """Chats of ~256 tokens: a passage, a question, a one-line quoted answer."""
    filler = "The encoder maps each input token to a vector and attends over the whole sequence. " * 11
    rows = [{"messages": [{"role": "system", "content": "Answer using only the sources."},
                          {"role": "user", "content": f"Sources:\n\n[1] (paper.pdf, p. {i})\n{filler}\n\nQuestion: What does the encoder do?"},
                          {"role": "assistant", "content": '"The encoder maps each input token to a vector." [1]'}]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_one(shape: str, data: str, steps: int) -> dict:
    """One shape in a child process (so its peak RSS is its own)."""
    code = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from finetune import train
from ragqa.config import Config, GeneratorConfig, TrainConfig
cfg = Config(train=TrainConfig(max_steps={steps}, batch_size=4, max_dropped_share=1.0, smoke_steps=0, logging_steps=1,
             save_steps=10_000, eval_samples=1, eval_steps=10_000, **{SHAPES[shape]!r}), generator=GeneratorConfig())
m = train({data!r}, cfg.generator.model, {tempfile.mkdtemp()!r} + "/run", cfg, progress=False)
print("RESULT" + json.dumps({{k: m[k] for k in ("tokens_per_s", "peak_rss_mb", "seconds", "tokens_seen", "steps",
                                              "trainable_parameters", "first_loss", "last_loss")}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT")), None)
    if line is None:
        sys.exit(f"{shape}: failed\n{out.stderr[-2000:]}")
    return {"shape": shape, **json.loads(line[6:])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", help="a gen-data folder (the grouped/random shapes)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--shapes", default="reference,reference-bf16,grouped,random")
    args = ap.parse_args()
    rows = []
    for shape in args.shapes.split(","):
        synthetic_chats = shape.startswith("reference")
        if not synthetic_chats and not args.data:
            print(f"{shape}: skipped (needs --data)")
            continue
        data = str(synthetic(Path(tempfile.mkdtemp()) / "chats.jsonl")) if synthetic_chats else args.data
        rows.append(run_one(shape, data, args.steps))
        print(rows[-1], flush=True)
    table(rows)
    write_result("train", {"steps": args.steps, "data": args.data, "shapes": SHAPES, "rows": rows})


if __name__ == "__main__":
    main()
