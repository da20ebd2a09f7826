"""SimBERT training-step throughput (samples/s) on this machine, next to bert4keras 0.11.5.

Shapes: (4 layers, hidden 312, batch 32, len 32) and (12 layers, hidden 768, batch 16, len 32),
vocab 13584 (SimBERT's simplified vocab), random weights and data made here, AdamW, both losses.
bert4keras 0.11.5 cannot run on TF 2.21; its figures below were measured on a 2-core CPU machine
of this kind (from the issue): 62.0 and 12.4 samples/s.

Usage: python benchmarks/train.py [--model bert|roformer] [--precision mixed_bfloat16] [--steps 10]
"""
import argparse
import time

import numpy as np

SHAPES = [(4, 312, 32, 32, 62.0), (12, 768, 16, 32, 12.4)]


def measure(model_type, layers, hidden, batch, length, steps, vocab=13584):
    import keras

    from bert4sim.data import to_dataset
    from bert4sim.losses import SimBERTTrainer
    from bert4sim.models import build_transformer_model
    from bert4sim.training import make_optimizer

    keras.utils.set_random_seed(0)
    bert = build_transformer_model(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                   num_attention_heads=12, intermediate_size=4 * hidden, model=model_type,
                                   application="unilm", with_pool="linear", return_keras_model=False)
    trainer = SimBERTTrainer(bert)
    trainer.compile(optimizer=make_optimizer(1e-5))
    rng = np.random.default_rng(0)

    def batches():
        while True:
            token_ids = rng.integers(5, vocab, (batch, length)).astype("int32")
            segment_ids = np.zeros_like(token_ids)
            segment_ids[:, length // 2:] = 1
            yield token_ids, segment_ids

    dataset = to_dataset(batches())
    trainer.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # trace + warm up
    start = time.perf_counter()
    trainer.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return batch * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bert", choices=["bert", "roformer", "both"])
    parser.add_argument("--precision", default=None, choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    from bert4sim.training import set_precision

    set_precision(args.precision)
    models = ["bert", "roformer"] if args.model == "both" else [args.model]
    print(f"precision: {args.precision or 'float32'}")
    for layers, hidden, batch, length, reference in SHAPES:
        for model_type in models:
            rate = measure(model_type, layers, hidden, batch, length, args.steps)
            print(f"{model_type:8s} L{layers:<2d} H{hidden:<3d} batch {batch} len {length}: {rate:6.1f} samples/s   "
                  f"bert4keras 0.11.5 (BERT, measured earlier): {reference:5.1f}   ratio {rate / reference:.2f}x")


if __name__ == "__main__":
    main()
