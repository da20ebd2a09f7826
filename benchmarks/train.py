"""SimBERT training-step throughput (samples/s) on this machine, bert4sim next to bert4keras 0.11.5.

Shapes: (4 layers, hidden 312, batch 32, len 32) and (12 layers, hidden 768, batch 16, len 32),
12 heads, vocab 13584 (SimBERT's simplified vocab), dropout 0.1, random weights and data made
here, AdamW, both losses, plain `fit`. The figure is the median step time after two warm-up steps
(each library's own `fit`, timed by a callback from batch begin to batch end).

bert4keras runs in its own old-TensorFlow virtualenv (see benchmarks/bert4keras_reference.py): give
its python with --bert4keras-python or BERT4KERAS_PYTHON and its figures are measured in this run,
on the same shapes; otherwise they are left out. Precision of ours: float32, bfloat16 (matrix
products in bfloat16, the rest float32: `matmul_dtype="bfloat16"`, for CPUs with AMX),
mixed_bfloat16 / mixed_float16 (Keras mixed-precision policies, for GPUs). bert4keras always runs
float32. With --model both, the RoFormer step time is also given relative to BERT's (RoPE cost).

Usage: python benchmarks/train.py [--model bert|roformer|both] [--precision float32 bfloat16]
       [--steps 10] [--bert4keras-python ~/b4k-ref/bin/python]
"""
import argparse
import os
import time

import numpy as np
from bert4keras_reference import measure, median_step_seconds

SHAPES = [(4, 312, 32, 32), (12, 768, 16, 32)]
HEADS, VOCAB = 12, 13584


def step_seconds(model_type, layers, hidden, batch, length, steps, precision):
    import keras

    from bert4sim.data import to_dataset
    from bert4sim.simbert import simbert_training_model
    from bert4sim.models import build_transformer_model
    from bert4sim.precision import set_precision
    from bert4sim.training import make_optimizer

    matmul_dtype = set_precision(precision)
    keras.utils.set_random_seed(0)
    bert = build_transformer_model(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=HEADS,
        intermediate_size=4 * hidden, model=model_type, application="unilm", with_pool="linear",
        return_keras_model=False, matmul_dtype=matmul_dtype,
    )
    trainer = simbert_training_model(bert)  # the examples' model: the loss is a layer inside
    trainer.compile(optimizer=make_optimizer(1e-5), jit_compile=False)
    rng = np.random.default_rng(0)

    def batches():
        while True:
            token_ids = rng.integers(5, VOCAB, (batch, length)).astype("int32")
            segment_ids = np.zeros_like(token_ids)
            segment_ids[:, length // 2:] = 1
            yield token_ids, segment_ids

    try:
        return median_step_seconds(keras, trainer, to_dataset(batches()), steps)
    finally:
        set_precision(None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="both", choices=["bert", "roformer", "both"])
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"],
                        choices=["float32", "bfloat16", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--bert4keras-python", default=os.environ.get("BERT4KERAS_PYTHON"),
                        help="python of a virtualenv with bert4keras 0.11.5 + TF 2.12 (see bert4keras_reference.py)")
    args = parser.parse_args()
    models = ["bert", "roformer"] if args.model == "both" else [args.model]
    measured = {}
    for layers, hidden, batch, length in SHAPES:
        print(f"L{layers} H{hidden} batch {batch} len {length}:")
        for model_type in models:
            reference = None
            if args.bert4keras_python:
                reference = measure(args.bert4keras_python, "train", model=model_type, layers=layers, hidden=hidden,
                                    heads=HEADS, vocab=VOCAB, batch=batch, length=length,
                                    steps=args.steps)["seconds_per_step"]
                print(f"  {model_type:8s} bert4keras 0.11.5 float32 : {batch / reference:6.1f} samples/s "
                      f"({reference:.3f} s/step)")
            for precision in args.precision:
                ours = step_seconds(model_type, layers, hidden, batch, length, args.steps, precision)
                measured[layers, model_type, precision] = ours
                ratio = f"   {reference / ours:.2f}x bert4keras" if reference else ""
                print(f"  {model_type:8s} bert4sim {precision:15s}: {batch / ours:6.1f} samples/s ({ours:.3f} s/step)"
                      f"{ratio}", flush=True)
    if len(models) == 2:
        for (layers, model_type, precision), seconds in measured.items():
            if model_type == "roformer":
                bert = measured[layers, "bert", precision]
                print(f"RoPE cost, L{layers} {precision}: RoFormer step {seconds / bert - 1:+.1%} vs BERT's "
                      f"(target <= +15%)")
    if not args.bert4keras_python:
        print("bert4keras: not measured (pass --bert4keras-python, see benchmarks/bert4keras_reference.py)")


if __name__ == "__main__":
    main()
