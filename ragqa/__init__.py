"""ragqa: question answering over research papers and technical blogs, on your own machine.

The package root exports the base layer only (configuration, errors, model loading); stages
(``ingest``, ``retrieval``, ``finetune``) build on it and front ends (``ragqa.cli``, ``ui``) on them.
"""
from ragqa.config import Config, home, load_config
from ragqa.errors import ConfigError, RagqaError
from ragqa.generators import load_causal_lm, load_generator

__version__ = "0.1.0"
__all__ = ["Config", "load_config", "home", "RagqaError", "ConfigError", "load_generator", "load_causal_lm"]
