"""``export``: a training run as something to serve — the adapter alone, or merged weights,
optionally quantized (bitsandbytes NF4 or int8), each loadable by ``ragqa ask``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ragqa.config import GeneratorConfig
from ragqa.errors import ConfigError

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "README.md",
                 "metrics.json", "loss.png")
QUANTIZE = ("nf4", "int8")


def export(run, out, merge: bool = False, quantize: str = "", generator: GeneratorConfig | None = None,
           bf16: bool = False) -> dict:
    """Write run ``run``'s adapter (or, with ``merge``, the base model with it folded in) to ``out``;
    ``bf16`` stores an adapter's weights in bfloat16 (half the size, what the package ships)."""
    run, out = Path(run), Path(out)
    cfg = run / "adapter_config.json"
    if not cfg.is_file():
        raise ConfigError(f"{run}: no adapter here (adapter_config.json) — give a finished `ragqa train` run folder")
    if quantize and quantize not in QUANTIZE:
        raise ConfigError(f"--quantize {quantize}: use nf4 or int8")
    if quantize and not merge:
        raise ConfigError("--quantize applies to merged weights — add --merge")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty — pass another --out")
    base = json.loads(cfg.read_text()).get("base_model_name_or_path") or ""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if merge:
        _merge(run, base, staging, quantize, generator or GeneratorConfig())
        kind = f"merged{' ' + quantize if quantize else ''} model"
    else:
        for name in ADAPTER_FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, staging / name)
        if bf16:
            _to_bf16(staging / "adapter_model.safetensors")
        kind = "bf16 adapter" if bf16 else "adapter"
    if out.exists():
        out.rmdir()
    staging.rename(out)  # whole or absent: a failed export leaves nothing half-written at --out
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"kind": kind, "base": base, "out": str(out), "mb": round(size / 2**20, 2)}


def _to_bf16(path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in tensors.items()}, path,
              metadata={"format": "pt"})


def _merge(run: Path, base: str, out: Path, quantize: str, generator: GeneratorConfig) -> None:
    from ragqa.generators import load_causal_lm

    model, tokenizer = load_causal_lm(GeneratorConfig(**{**vars(generator), "model": base, "adapter": str(run),
                                                         "precision": "fp32"}))
    model = model.merge_and_unload()
    if quantize:  # reload the merged weights through bitsandbytes, which serialises its 4/8-bit layers
        model.save_pretrained(out / "fp32")
        tokenizer.save_pretrained(out / "fp32")
        model = _quantized(out / "fp32", quantize)
        shutil.rmtree(out / "fp32")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for name in ("README.md", "metrics.json", "loss.png"):
        if (run / name).is_file():
            shutil.copy2(run / name, out / name)


def _quantized(folder: Path, quantize: str):
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("--quantize needs bitsandbytes — pip install bitsandbytes (or: pip install 'ragqa[train]')")
    bnb = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)
           if quantize == "nf4" else BitsAndBytesConfig(load_in_8bit=True))
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=bnb)
