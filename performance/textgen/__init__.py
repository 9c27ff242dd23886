"""Everything about models: tokenizers, architectures, checkpoints, sampling, training.

Public entry points: `load_model(name_or_path)` and the `Generator` / `Stream` interface in base.py.
"""

from performance.textgen.base import (
    BatchStream,
    Generator,
    ModelFileError,
    Stream,
    Token,
)
from performance.textgen.cards import resolve_model_dir
from performance.textgen.registry import load_model

__all__ = [
    "BatchStream",
    "Generator",
    "ModelFileError",
    "Stream",
    "Token",
    "load_model",
    "resolve_model_dir",
]
