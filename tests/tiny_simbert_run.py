"""A tiny SimBERT training run through the library's training path, for the resume and multi-worker tests.

    python tests/tiny_simbert_run.py OUT_DIR WEIGHTS.npz [--pause-at STEP] [--logical-cpus N] ...

Trains a one-layer model (dropout on, RoFormer-Sim noise on the sources) on step-indexed batches, with
step backups in OUT_DIR, and saves the trainable weights to WEIGHTS.npz (those before training to
WEIGHTS.npz.initial.npz). ``--pause-at STEP`` prints ``paused STEP`` once the optimizer has taken STEP steps (after that step's backup, if any) and
waits to be killed. Strategy: bert4sim.training.get_strategy() (TF_CONFIG picks multi-worker), or a
MirroredStrategy over N logical CPUs of this process with ``--logical-cpus N``.
"""
import argparse
import json
import os
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("weights")
    parser.add_argument("--pause-at", type=int, default=0)
    parser.add_argument("--logical-cpus", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=3)
    parser.add_argument("--backup-every", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.1)
    args = parser.parse_args(argv)

    import tensorflow as tf

    from bert4sim.training import get_strategy

    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.logical_cpus)])
    else:
        strategy = get_strategy()  # before any TensorFlow op: multi-worker needs that

    import keras
    import numpy as np

    from bert4sim.data import to_dataset
    from bert4sim.roformer_sim import noisy_source
    from bert4sim.simbert import simbert_batches, simbert_training_model
    from bert4sim.models import build_transformer_model
    from bert4sim.tokenizers import Tokenizer
    from bert4sim.training import ExactResume, make_optimizer, training_callbacks

    characters = list("甲乙丙丁戊己庚辛壬癸")
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + characters)}
    groups = [[a + b + c, c + b + a, b + a + c] for a, b, c in zip(characters, characters[3:] + characters[:3],
                                                                   characters[6:] + characters[:6])]
    tokenizer = Tokenizer(vocab)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        bert = build_transformer_model(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32, application="unilm",
                                       with_pool="linear", dropout_rate=args.dropout,
                                       attention_dropout_rate=args.dropout, return_keras_model=False)
        trainer = simbert_training_model(bert)
        trainer.compile(optimizer=make_optimizer(1e-2, total_steps=args.epochs * args.steps_per_epoch))
    resume = ExactResume()
    noise = noisy_source(noise_probability=0.5, word_rate=0.3, pre_tokenize=list)
    dataset = to_dataset(lambda step: simbert_batches(groups, tokenizer, args.batch_size, maxlen=8, seed=0,
                                                      encode_source=noise, start_step=step),
                         start_step=resume.start_step)

    def step(model):
        return int(keras.ops.convert_to_numpy(model.optimizer.iterations.value))

    class Pause(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if step(self.model) == args.pause_at:
                print(f"paused {args.pause_at}", flush=True)
                time.sleep(600)  # the test kills this process (SIGKILL) now

    os.makedirs(os.path.dirname(os.path.abspath(args.weights)), exist_ok=True)
    weights = lambda: [keras.ops.convert_to_numpy(v.value) for v in trainer.trainable_variables]  # noqa: E731
    np.savez(args.weights + ".initial.npz", *weights())
    callbacks = training_callbacks(args.out, tensorboard=False, backup_every=args.backup_every, resume=resume)
    trainer.fit(dataset, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, verbose=0,
                callbacks=callbacks + [Pause()])
    np.savez(args.weights, *weights())
    print(json.dumps({"start_step": resume.start_step(), "steps": step(trainer),
                      "replicas": strategy.num_replicas_in_sync, "strategy": type(strategy).__name__}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
