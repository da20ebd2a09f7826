"""Packaging for bert4sim.

TensorFlow comes as ``tensorflow-cpu`` unless the GPU build (``tensorflow``) is
already installed, so ``pip install -e .`` never puts both builds side by side.
"""
import os
from importlib import metadata

from setuptools import find_packages, setup

TF_VERSION = "~=2.21.0"


def tensorflow_requirement():
    """Pick the TensorFlow distribution: keep the user's GPU build if present."""
    wanted = os.environ.get("BERT4SIM_TENSORFLOW")
    if wanted:
        return f"{wanted}{TF_VERSION}"
    for name in ("tensorflow", "tf-nightly"):
        try:
            metadata.version(name)
            return f"{name}{TF_VERSION}" if name == "tensorflow" else name
        except metadata.PackageNotFoundError:
            pass
    return f"tensorflow-cpu{TF_VERSION}"


setup(
    name="bert4sim",
    version="0.1.0",
    description="Chinese sentence similarity models (SimBERT, RoFormer-Sim, RetroMAE, "
    "Sentence-BERT) on Keras 3 / TensorFlow, bert4keras-compatible.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["bert4sim", "bert4sim.*"]),
    install_requires=[
        tensorflow_requirement(),
        "keras>=3.8",
        "numpy>=1.26",
        "jieba>=0.42",
        "h5py>=3.10",
    ],
    extras_require={
        # import-linter checks the package's declared layers (setup.cfg [importlinter], run by .ci/run).
        "dev": ["pytest>=8", "hypothesis>=6.100", "tensorboard>=2.15", "fastapi>=0.110", "uvicorn>=0.29",
                "httpx>=0.27", "import-linter>=2.0"],
        # TensorBoard logs from bert4sim.training.training_callbacks (skipped with a warning without it).
        "train": ["tensorboard>=2.15"],
        # Only for the scripts that regenerate reference fixtures and for the
        # comparison columns of the benchmarks; never needed at run time.
        "reference": ["torch==2.13.0", "transformers>=4.40", "sentence-transformers>=3.0"],
        "faiss": ["faiss-cpu>=1.8"],
        # Reading a transformers pytorch_model.bin (torch.load(..., weights_only=True)); safetensors need no torch.
        "torch": ["torch>=2.0"],
        # The learning-curve plot of benchmarks/pretraining.py (curve.png; the JSON is written without it).
        "plot": ["matplotlib>=3.7"],
        # `bert4sim serve`: the HTTP JSON service (bert4sim.serving); httpx drives benchmarks/serve.py.
        "serve": ["fastapi>=0.110", "uvicorn>=0.29", "httpx>=0.27"],
    },
    entry_points={"console_scripts": ["bert4sim=bert4sim.cli:main"]},
)
