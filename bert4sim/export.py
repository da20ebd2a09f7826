"""Export a SimilarityModel's encoder as a TensorFlow SavedModel (for TF Serving and plain TensorFlow).

The SavedModel has one signature, ``serving_default``: int32 ``token_ids`` and ``segment_ids`` of
shape ``[batch, length]`` (0 = padding, as ``Tokenizer.encode`` + ``sequence_padding`` give) in,
float32 ``vectors`` (the encoder's output) and ``unit_vectors`` (L2-normalised, what
``SimilarityModel.encode`` returns by default) of shape ``[batch, dim]`` out. Tokenization stays
outside the graph: ``assets.extra/vocab.txt`` and ``assets.extra/bert4sim.json`` (maxlen,
lower-casing, model id) travel with it so a client can tokenize the same way.
"""
import json
import os

from bert4sim.files import fresh_folder

EXTRA = "assets.extra"


def export_saved_model(model, directory):
    """Write ``model``'s encoder (a SimilarityModel) as a SavedModel folder ``directory``.

    The graph computes as ``model`` does: with ``precision="bfloat16"`` its matrix products run in
    bfloat16 (recorded in ``bert4sim.json``); ``bert4sim export`` uses float32 unless asked.

    The folder is written next to its destination and renamed into place, so a failed export
    leaves no half-written model; an existing non-empty folder is an error.

    Example:
        >>> export_saved_model(SimilarityModel.load("models/faq"), "exported/faq")
        >>> served = tf.saved_model.load("exported/faq").signatures["serving_default"]
        >>> served(token_ids=tf.constant([[2, 10, 11, 3]]), segment_ids=tf.zeros([1, 4], tf.int32))
        {'vectors': <tf.Tensor: shape=(1, dim)...>, 'unit_vectors': ...}
    """
    import keras
    import tensorflow as tf

    from bert4sim.tokenizers import save_vocab

    directory = os.path.abspath(directory)
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise FileExistsError(f"export folder {directory} exists and is not empty")
    encoder = model.encoder

    def serve(token_ids, segment_ids):
        vectors = tf.cast(encoder([token_ids, segment_ids], training=False), tf.float32)
        return {"vectors": vectors, "unit_vectors": tf.math.l2_normalize(vectors, axis=1, epsilon=1e-24)}

    archive = keras.export.ExportArchive()
    archive.track(encoder)
    archive.add_endpoint("serving_default", serve, input_signature=[
        tf.TensorSpec([None, None], tf.int32, name="token_ids"),
        tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
    ])
    with fresh_folder(directory) as staging:
        archive.write_out(staging, verbose=False)
        os.makedirs(os.path.join(staging, EXTRA), exist_ok=True)
        save_vocab(os.path.join(staging, EXTRA, "vocab.txt"), model.tokenizer.token_dict)
        meta = {"maxlen": model.maxlen, "do_lower_case": model.tokenizer._do_lower_case, "model_id": model.model_id,
                "precision": model.precision,
                "inputs": ["token_ids", "segment_ids"], "outputs": ["vectors", "unit_vectors"]}
        with open(os.path.join(staging, EXTRA, "bert4sim.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False, indent=1)
    return directory
