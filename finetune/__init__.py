"""Training data from your corpus: retrieval-grounded self-instruct (``generate_data``) and MoDS
selection (``select_data``). Built on the base layer and ``retrieval/`` only; hands off through
dataset folders that ``datasets.load_from_disk`` reads."""
from finetune._generate import generate_data
from finetune._select import select_data

__all__ = ["generate_data", "select_data"]
