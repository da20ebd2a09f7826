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

Under each of our figures, the step's two bounds (benchmarks/_machine.py): the FLOPs of its matrix
products against the matmul peak of that precision measured here, and the bytes it must at least
move against the measured memory bandwidth; the binding one is marked. FLOPs, from the shape:
forward = per block the query/key/value/output projections, the FFN and both attention products
(length x length), the MLM head (transform + vocabulary product) on the predicted tokens only
(the second half of each row), the pooler on the [CLS] rows and the batch x batch similarity
product; a training step = 3x forward (backward: the gradient of both operands of every product).
Bytes: every product kernel read in the forward and the backward pass at the precision's width
(bfloat16: plus its cast from float32), and per trainable weight its float32 gradient written and
AdamW's reads (weight, gradient, both moments) and writes (weight, both moments); activations
are not counted, so this bound is a floor. Mixed policies are reported against the bfloat16 /
float16 peak.

Usage: python benchmarks/train.py [--model bert|roformer|both] [--precision float32 bfloat16]
       [--steps 10] [--shapes 4x312x32x32 12x768x16x32] [--bert4keras-python ~/b4k-ref/bin/python]
"""
import argparse
import os

import numpy as np
from _machine import WIDTH, block_product_flops, bound_lines, head_product_flops, machine_lines, product_weights
from bert4keras_reference import measure, median_step_seconds

SHAPES = ["4x312x32x32", "12x768x16x32"]  # layers x hidden x batch x length
HEADS, VOCAB = 12, 13584


def step_bounds(layers, hidden, batch, length, trainable, precision):
    """``(FLOPs, bytes)`` of one training step (see the module docstring for what is counted).

    Example:
        >>> step_bounds(12, 768, 16, 32, trainable=96_000_000, precision="bfloat16")
    """
    inner, predicted = 4 * hidden, batch * (length - length // 2)
    forward = layers * block_product_flops(batch * length, length, hidden, inner) \
        + head_product_flops(predicted, hidden, VOCAB, pooled_rows=batch) + 2 * batch * batch * hidden
    width = WIDTH[product_dtype(precision)]
    kernels = product_weights(layers, hidden, inner, VOCAB, pooler=True)
    cast = kernels * (4 + width) if width != 4 else 0
    return 3 * forward, kernels * 2 * width + cast + trainable * (4 + 16 + 12)


def product_dtype(precision):
    """The dtype the products of ``precision`` run in, e.g. ``product_dtype("mixed_bfloat16") == "bfloat16"``."""
    return {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(precision, precision)


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
        seconds = median_step_seconds(keras, trainer, to_dataset(batches()), steps)
        return seconds, sum(int(np.prod(w.shape)) for w in trainer.trainable_weights)
    finally:
        set_precision(None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="both", choices=["bert", "roformer", "both"])
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"],
                        choices=["float32", "bfloat16", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--shapes", nargs="+", default=SHAPES, help="layers x hidden x batch x length")
    parser.add_argument("--bert4keras-python", default=os.environ.get("BERT4KERAS_PYTHON"),
                        help="python of a virtualenv with bert4keras 0.11.5 + TF 2.12 (see bert4keras_reference.py)")
    args = parser.parse_args()
    models = ["bert", "roformer"] if args.model == "both" else [args.model]
    peaks, bandwidth, lines = machine_lines(sorted({product_dtype(p) for p in args.precision}, reverse=True))
    print("\n".join(lines))
    measured = {}
    for layers, hidden, batch, length in (map(int, shape.split("x")) for shape in args.shapes):
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
                ours, trainable = step_seconds(model_type, layers, hidden, batch, length, args.steps, precision)
                measured[layers, model_type, precision] = ours
                ratio = f"   {reference / ours:.2f}x bert4keras" if reference else ""
                print(f"  {model_type:8s} bert4sim {precision:15s}: {batch / ours:6.1f} samples/s ({ours:.3f} s/step)"
                      f"{ratio}")
                flops, moved = step_bounds(layers, hidden, batch, length, trainable, precision)
                print("\n".join(bound_lines(flops, moved, ours, peaks[product_dtype(precision)], bandwidth,
                                            product_dtype(precision))), flush=True)
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
