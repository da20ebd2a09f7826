"""Shared test set-up: quiet TensorFlow, Keras on the TF backend, tests/ importable."""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))
# precision="auto" (the default) would time this machine's bfloat16 products; the suite pins it instead.
os.environ.setdefault("BERT4SIM_AUTO_PRECISION", "float32")
