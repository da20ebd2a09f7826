"""bert4keras 0.11.5's own figures for the benchmarks, run under an old TensorFlow.

bert4keras does not import on TensorFlow 2.15+ / Keras 3, so this script runs in a separate
virtualenv (it imports nothing from bert4sim); `benchmarks/train.py` and `benchmarks/generation.py`
start it with `--bert4keras-python` and print its figures next to ours. The environment:

    python -m venv ~/b4k-ref
    ~/b4k-ref/bin/pip install "tensorflow-cpu==2.12.*" "numpy<2"
    ~/b4k-ref/bin/pip install --no-deps bert4keras==0.11.5

What it measures, on random weights and data of the given shape:
  train: samples/s of the SimBERT training step as bert4keras users train it (unilm model with a
         linear pooler, a `Loss` layer adding the seq2seq cross-entropy over the full softmax and
         the in-batch similarity loss, AdamW from `extend_with_weight_decay`, `model.fit`).
  generate: seconds per `AutoRegressiveDecoder.random_sample(n, topk=5)` call with forced steps
         (the end id never occurs), the decoder recomputing source + output every step.
Each prints one JSON line.

Usage: TF_KERAS=1 ~/b4k-ref/bin/python benchmarks/bert4keras_reference.py train --layers 12 --hidden 768
       --batch 16 --length 32 [--model bert|roformer] [--steps 10]
       TF_KERAS=1 ~/b4k-ref/bin/python benchmarks/bert4keras_reference.py generate --layers 12
       --hidden 768 [--n 100 --steps 32 --source-length 20]
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_KERAS", "1")

import numpy as np  # noqa: E402


def measure(python, task, **options):
    """Run this script under ``python`` (bert4keras's virtualenv) and return its JSON result.

    For the benchmarks, which run under today's TensorFlow.

    Example:
        >>> measure("~/b4k-ref/bin/python", "train", layers=4, hidden=312, batch=32)["samples_per_s"]
    """
    import subprocess
    import sys

    command = [python, os.path.abspath(__file__), task]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_KERAS": "1"})
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        sys.exit(f"bert4keras reference failed ({' '.join(command)}):\n{result.stderr[-2000:]}")
    return json.loads(lines[-1])


def build(args, application):
    from bert4keras.models import build_transformer_model

    return build_transformer_model(
        model=args.model, application=application, with_pool="linear", return_keras_model=False,
        vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
        hidden_act="gelu", max_position_embeddings=512, type_vocab_size=2,
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    )


def median_step_seconds(keras, model, data, steps):
    """``model.fit`` for ``steps`` + 2 steps; the median step time (batch begin to end) after the first two.

    ``keras`` is the Keras module ``model`` belongs to: bert4keras's tf.keras here, Keras 3 in
    benchmarks/train.py. The first two steps trace and warm up.

    Example:
        >>> median_step_seconds(keras, trainer, dataset, steps=10)
    """

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    timer = StepTimer()
    model.fit(data, steps_per_epoch=steps + 2, epochs=1, verbose=0, callbacks=[timer])
    return float(np.median(timer.seconds[2:]))


def train(args):
    from bert4keras.backend import K, keras, tf
    from bert4keras.layers import Loss

    # bert4keras 0.11.5's optimizers subclass the optimizer base of TF <= 2.10, which TF 2.11+
    # keeps as keras.optimizers.legacy.Optimizer; point the name there for its import (this
    # reference process only), so bert4keras's own Adam + weight-decay extension run unchanged.
    keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer
    from bert4keras.optimizers import Adam, extend_with_weight_decay

    class SeqSimilarityLoss(Loss):
        """seq2seq cross-entropy on segment-1 tokens + in-batch similarity (x30, pairs adjacent)."""

        def compute_loss(self, inputs, mask=None):
            token_ids, segment_ids, pooled, probas = inputs
            targets, weights = token_ids[:, 1:], K.cast(segment_ids[:, 1:], K.floatx())
            cross_entropy = K.sparse_categorical_crossentropy(targets, probas[:, :-1])
            generation = K.sum(cross_entropy * weights) / K.sum(weights)
            vectors = K.l2_normalize(pooled, axis=1)
            similarities = K.dot(vectors, K.transpose(vectors)) - tf.eye(K.shape(vectors)[0]) * 1e12
            rows = K.arange(0, K.shape(vectors)[0])
            labels = rows + 1 - rows % 2 * 2
            similarity = K.mean(K.sparse_categorical_crossentropy(labels, similarities * 30, from_logits=True))
            return generation + similarity

    bert = build(args, "unilm")
    outputs = SeqSimilarityLoss([2, 3])(bert.model.inputs + bert.model.outputs)
    model = keras.models.Model(bert.model.inputs, outputs)
    model.compile(optimizer=extend_with_weight_decay(Adam, "AdamW")(learning_rate=1e-5, weight_decay_rate=0.01))
    rng = np.random.default_rng(0)

    def batches():
        while True:
            token_ids = rng.integers(5, args.vocab, (args.batch, args.length)).astype("int32")
            segment_ids = np.zeros_like(token_ids)
            segment_ids[:, args.length // 2:] = 1
            yield (token_ids, segment_ids),

    step = median_step_seconds(keras, model, batches(), args.steps)
    return {"seconds_per_step": step, "samples_per_s": args.batch / step}


def generate(args):
    from bert4keras.snippets import AutoRegressiveDecoder

    from bert4keras.backend import keras

    bert = build(args, "unilm")
    seq2seq = keras.models.Model(bert.model.inputs, bert.model.outputs[-1])  # MLM probabilities

    class Sampler(AutoRegressiveDecoder):
        @AutoRegressiveDecoder.wraps(default_rtype="probas")
        def predict(self, inputs, output_ids, states):
            token_ids, segment_ids = inputs
            token_ids = np.concatenate([token_ids, output_ids], 1)
            segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
            return self.last_token(seq2seq).predict([token_ids, segment_ids], verbose=0)

    rng = np.random.default_rng(0)
    source = [2] + list(rng.integers(5, args.vocab, args.source_length - 2)) + [3]
    inputs = [source, [0] * len(source)]
    sampler = Sampler(start_id=None, end_id=-1, maxlen=args.steps)
    sampler.random_sample(inputs, 2, topk=5)  # build the predict functions once
    start = time.perf_counter()
    outputs = sampler.random_sample(inputs, args.n, topk=5)
    return {"seconds_per_call": time.perf_counter() - start, "samples": len(outputs),
            "generated_tokens": int(sum(len(o) for o in outputs))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["train", "generate"])
    parser.add_argument("--model", default="bert", choices=["bert", "roformer"])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=13584)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="training steps (10) / generated tokens (32)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--source-length", type=int, default=20)
    args = parser.parse_args()
    if args.steps is None:
        args.steps = 10 if args.task == "train" else 32
    import tensorflow as tf

    tf.random.set_seed(0)
    result = train(args) if args.task == "train" else generate(args)
    import bert4keras

    print(json.dumps({"bert4keras": bert4keras.__version__, "tensorflow": tf.__version__, **result}))


if __name__ == "__main__":
    main()
