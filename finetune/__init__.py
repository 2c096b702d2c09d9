"""Training data from your corpus: retrieval-grounded self-instruct (``generate_data``) and MoDS
selection (``select_data``), then LoRA/QLoRA fine-tuning (``train``), preference optimisation on the
model's own replies (``preference_pairs``, ``prefer``) and ``export``. Built on the base layer and ``retrieval/`` only; hands off through
dataset folders that ``datasets.load_from_disk`` reads."""
from finetune._export import export
from finetune._generate import generate_data
from finetune._prefer import preference_pairs, prefer
from finetune._replies import self_replies
from finetune._select import select_data
from finetune._train import TrainingError, main_process, train

__all__ = ["TrainingError", "export", "generate_data", "main_process", "preference_pairs", "prefer", "select_data", "self_replies", "train"]
