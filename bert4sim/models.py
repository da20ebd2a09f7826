"""Transformer builders (BERT, RoFormer) and Google-format checkpoint IO."""
import json
import os

import numpy as np
import tensorflow as tf


def write_checkpoint(checkpoint_path, arrays):
    """Write ``{variable_name: array}`` as a TF (Google-format) checkpoint.

    The names are written exactly as given (no ``.ATTRIBUTES`` suffixes), so
    the result reads back with ``tf.train.load_checkpoint`` like the released
    BERT checkpoints.

    Example:
        >>> write_checkpoint("/tmp/ckpt/bert_model.ckpt",
        ...                  {"bert/pooler/dense/bias": np.zeros(4, "float32")})
    """
    if not arrays:
        raise ValueError("write_checkpoint: no variables to write")
    directory = os.path.dirname(os.path.abspath(checkpoint_path))
    os.makedirs(directory, exist_ok=True)
    names = sorted(arrays)
    tensors = [tf.convert_to_tensor(np.asarray(arrays[name])) for name in names]
    tf.raw_ops.SaveV2(
        prefix=checkpoint_path,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=tensors,
    )
    # The TF1 "checkpoint" state file lets tf.train.latest_checkpoint find it.
    with open(os.path.join(directory, "checkpoint"), "w", encoding="utf-8") as f:
        f.write(f'model_checkpoint_path: "{os.path.basename(checkpoint_path)}"\n')
