"""bert4sim: SimBERT, RoFormer-Sim, RetroMAE and Sentence-BERT on Keras 3.

The names users import most are re-exported here lazily, so ``import bert4sim``
stays cheap and does not import TensorFlow until a model is needed.
"""
import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

_EXPORTS = {
    "build_transformer_model": "bert4sim.models",
    "Tokenizer": "bert4sim.tokenizers",
    "load_vocab": "bert4sim.tokenizers",
    "sequence_padding": "bert4sim.sequences",
    "AutoRegressiveDecoder": "bert4sim.decoder",
    "SimilarityModel": "bert4sim.similarity",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bert4sim' has no attribute {name!r}")


__all__ = sorted(_EXPORTS) + ["__version__"]
