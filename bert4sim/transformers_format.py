"""transformers' BERT / RoFormer layout ↔ Google checkpoint layout: names, configs, and the folder's files.

One table (:data:`NAME_RULES`) maps transformers parameter names to Google
checkpoint names, for ``BertModel`` / ``BertFor*`` and ``RoFormerModel`` /
``RoFormerFor*`` (whose names are BERT's, without position embeddings and
with a fixed sinusoidal ``encoder.embed_positions`` table for the rotary
attention). Linear weights are ``[out, in]`` in transformers and
``[in, out]`` in Google checkpoints. What bert4sim cannot represent
(``rotary_value``, ``embedding_size != hidden_size``, another LayerNorm
epsilon, relative position embeddings, untied MLM decoders) is refused.

Tables and array conversion only, numpy only (the folder's files are read by
:mod:`bert4sim.transformers_folder`).
"""
import re

import numpy as np


MODEL_TYPES = ("bert", "roformer")
LAYER_NORM_EPSILON = 1e-12
# The LayerNorm epsilon bert4sim builds each model type with when its config has no layer_norm_eps (bert4keras's:
# RoFormer's norms use K.epsilon()); bert4sim.layers holds the same two numbers (tested).
DEFAULT_LAYER_NORM_EPSILON = {"bert": LAYER_NORM_EPSILON, "roformer": 1e-7}
# (transformers name under the base model, Google name under the scope, transposed, models); "{i}": layer index.
_BLOCK = (
    ("attention.self.query.weight", "attention/self/query/kernel", True),
    ("attention.self.query.bias", "attention/self/query/bias", False),
    ("attention.self.key.weight", "attention/self/key/kernel", True),
    ("attention.self.key.bias", "attention/self/key/bias", False),
    ("attention.self.value.weight", "attention/self/value/kernel", True),
    ("attention.self.value.bias", "attention/self/value/bias", False),
    ("attention.output.dense.weight", "attention/output/dense/kernel", True),
    ("attention.output.dense.bias", "attention/output/dense/bias", False),
    ("attention.output.LayerNorm.weight", "attention/output/LayerNorm/gamma", False),
    ("attention.output.LayerNorm.bias", "attention/output/LayerNorm/beta", False),
    ("intermediate.dense.weight", "intermediate/dense/kernel", True),
    ("intermediate.dense.bias", "intermediate/dense/bias", False),
    ("output.dense.weight", "output/dense/kernel", True),
    ("output.dense.bias", "output/dense/bias", False),
    ("output.LayerNorm.weight", "output/LayerNorm/gamma", False),
    ("output.LayerNorm.bias", "output/LayerNorm/beta", False),
)
BASE_RULES = (
    ("embeddings.word_embeddings.weight", "embeddings/word_embeddings", False, MODEL_TYPES),
    ("embeddings.token_type_embeddings.weight", "embeddings/token_type_embeddings", False, MODEL_TYPES),
    ("embeddings.position_embeddings.weight", "embeddings/position_embeddings", False, ("bert",)),
    ("embeddings.LayerNorm.weight", "embeddings/LayerNorm/gamma", False, MODEL_TYPES),
    ("embeddings.LayerNorm.bias", "embeddings/LayerNorm/beta", False, MODEL_TYPES),
) + tuple((f"encoder.layer.{{i}}.{hf}", f"encoder/layer_{{i}}/{google}", t, MODEL_TYPES) for hf, google, t in _BLOCK) + (
    # RoFormer's pooler: not in transformers' RoFormerModel, but in RoFormer-Sim ports (junnyu's roformer package)
    ("pooler.dense.weight", "pooler/dense/kernel", True, MODEL_TYPES),
    ("pooler.dense.bias", "pooler/dense/bias", False, MODEL_TYPES),
)
HEAD_RULES = (  # outside the base model on both sides
    ("cls.predictions.transform.dense.weight", "cls/predictions/transform/dense/kernel", True, MODEL_TYPES),
    ("cls.predictions.transform.dense.bias", "cls/predictions/transform/dense/bias", False, MODEL_TYPES),
    ("cls.predictions.transform.LayerNorm.weight", "cls/predictions/transform/LayerNorm/gamma", False, MODEL_TYPES),
    ("cls.predictions.transform.LayerNorm.bias", "cls/predictions/transform/LayerNorm/beta", False, MODEL_TYPES),
    ("cls.predictions.bias", "cls/predictions/output_bias", False, MODEL_TYPES),
    ("cls.seq_relationship.weight", "cls/seq_relationship/output_weights", False, MODEL_TYPES),  # NSP, [2, H]
    ("cls.seq_relationship.bias", "cls/seq_relationship/output_bias", False, MODEL_TYPES),
)
NAME_RULES = BASE_RULES + HEAD_RULES
# Google config keys (bert_config.json) and what transformers calls them (the same names).
GOOGLE_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                      "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                      "type_vocab_size", "initializer_range")
REQUIRED_KEYS = GOOGLE_CONFIG_KEYS[:5]
CONFIG_DEFAULTS = {"hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                   "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02}
# transformers hidden_act -> bert4sim / Google hidden_act (both: "gelu" is the erf form)
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "gelu_fast": None,
               "relu": "relu", "silu": "silu", "swish": "swish", "tanh": "tanh"}
TO_TRANSFORMERS_ACTIVATION = {"gelu": "gelu", "gelu_erf": "gelu", "gelu_new": "gelu_new",
                              "gelu_approximate": "gelu_new", "relu": "relu", "silu": "silu", "swish": "swish",
                              "tanh": "tanh"}
SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                  "mask_token": "[MASK]"}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def _some(names, shown=6):
    """The first ``shown`` of ``names`` (sorted) for an error message, and how many more there are."""
    names = sorted(names)
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _pattern(template):
    return re.compile(re.escape(template).replace(re.escape("{i}"), r"(\d+)"))


# (compiled pattern, the other side's template, transposed, models, head outside the base model)
_HF_PATTERNS = [(_pattern(hf), google, t, models, head)
                for rules, head in ((BASE_RULES, False), (HEAD_RULES, True)) for hf, google, t, models in rules]
_GOOGLE_PATTERNS = [(_pattern(google), hf, t, models, head)
                    for rules, head in ((BASE_RULES, False), (HEAD_RULES, True)) for hf, google, t, models in rules]
DISPLAY = {"bert": "BERT", "roformer": "RoFormer"}


def sinusoidal_table(positions, head_size):
    """transformers RoFormer's ``embed_positions`` table: sin of all pair angles, then their cos.

    Row ``m``, column ``i < d/2``: ``sin(m / 10000**(2i/d))``; column ``d/2 + i``: its cos.

    Example:
        >>> sinusoidal_table(512, 64).shape
        (512, 64)
    """
    pair = np.arange(head_size // 2, dtype=np.float64)
    angles = np.arange(positions, dtype=np.float64)[:, None] / np.power(10000.0, 2 * pair / head_size)[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


def _canonical(name, model_type):
    """Strip the base-model prefix and rename old ``LayerNorm.gamma/beta``; returns (name, had prefix)."""
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
    name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
    prefix = model_type + "."
    return (name[len(prefix):], True) if name.startswith(prefix) else (name, False)


def to_google(state_dict, model_type, config=None, scope="bert", where="state dict"):
    """transformers parameters → ``{Google name: float32 array}`` (kernels transposed).

    Tied copies (``cls.predictions.decoder.*``) must equal what they are tied
    to; a RoFormer's ``encoder.embed_positions`` must be the sinusoidal table
    (it is not stored in Google checkpoints); anything else unknown is an
    error naming it.

    Example:
        >>> arrays = to_google(read_safetensors("model.safetensors"), "bert", config)
        >>> arrays["bert/encoder/layer_0/attention/self/query/kernel"].shape
        (768, 768)
    """
    arrays, unknown, extra = {}, [], {}
    special = {"embeddings.position_ids", "cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    if model_type == "roformer":
        special.add("encoder.embed_positions.weight")
    for original, value in state_dict.items():
        name, _ = _canonical(original, model_type)
        if name in special:
            extra[name] = (original, value)
            continue
        for pattern, google, transpose, models, head in _HF_PATTERNS:
            match = pattern.fullmatch(name)
            if match and model_type in models:
                target = google.replace("{i}", match.group(1)) if match.groups() else google
                target = target if head else f"{scope}/{target}"
                arrays[target] = np.ascontiguousarray(np.asarray(value, dtype=np.float32).T if transpose
                                                      else np.asarray(value, dtype=np.float32))
                break
        else:
            unknown.append(original)
    if unknown:
        shown = _some(unknown)
        raise ValueError(f"{where}: unknown {DISPLAY[model_type]} parameter(s), not converted: {shown}")
    word = f"{scope}/embeddings/word_embeddings"
    if word not in arrays:
        raise ValueError(f"{where}: no embeddings.word_embeddings.weight: not a {DISPLAY[model_type]} model")
    _check_tied(arrays, extra, word, where)
    if "encoder.embed_positions.weight" in extra:
        if config is None:
            raise ValueError(f"{where}: checking encoder.embed_positions needs the model config")
        original, table = extra["encoder.embed_positions.weight"]
        table = np.asarray(table, dtype=np.float32)
        head = config["hidden_size"] // config["num_attention_heads"]
        expected = sinusoidal_table(table.shape[0], head)
        if table.shape != expected.shape or not np.allclose(table, expected, atol=1e-4):
            raise ValueError(f"{where}: {original} (shape {table.shape}) is not the sinusoidal rotary table "
                             f"of head size {head}; bert4sim computes that table and cannot load another")
    return arrays


def _check_tied(arrays, extra, word, where):
    if "cls.predictions.decoder.weight" in extra:
        original, decoder = extra["cls.predictions.decoder.weight"]
        if np.asarray(decoder).shape != arrays[word].shape or not np.array_equal(
                np.asarray(decoder, dtype=np.float32), arrays[word]):
            raise ValueError(f"{where}: {original} differs from the word embeddings; bert4sim ties the MLM "
                             "output projection to them and cannot load an untied one")
    if "cls.predictions.decoder.bias" in extra:
        original, bias = extra["cls.predictions.decoder.bias"]
        bias = np.asarray(bias, dtype=np.float32)
        kept = arrays.setdefault("cls/predictions/output_bias", bias)
        if kept.shape != bias.shape or not np.array_equal(kept, bias):
            raise ValueError(f"{where}: {original} differs from cls.predictions.bias")


def from_google(arrays, model_type, scope, with_prefix, where="checkpoint"):
    """``{Google name: array}`` → transformers names (kernels transposed); optimizer slots are dropped.

    ``with_prefix``: put base-model names under ``bert.`` / ``roformer.``
    (what ``*ForMaskedLM`` saves) instead of bare (what ``*Model`` saves).
    A RoFormer also gets its ``encoder.embed_positions.weight`` table.

    Example:
        >>> tensors = from_google(read_bundle("ckpt/bert_model.ckpt"), "bert", "bert", with_prefix=True)
        >>> tensors["bert.pooler.dense.weight"].shape
        (768, 768)
    """
    tensors, unknown = {}, []
    prefix = model_type + "." if with_prefix else ""
    for name, value in arrays.items():
        if is_training_state(name):
            continue
        inner = name[len(scope) + 1:] if name.startswith(scope + "/") else None
        for pattern, hf, transpose, models, head in _GOOGLE_PATTERNS:
            candidate = name if head else inner
            match = pattern.fullmatch(candidate) if candidate is not None else None
            if match and model_type in models:
                target = hf.replace("{i}", match.group(1)) if match.groups() else hf
                value = np.asarray(value)
                tensors[target if head else prefix + target] = np.ascontiguousarray(value.T if transpose else value)
                break
        else:
            unknown.append(name)
    if unknown:
        shown = _some(unknown)
        raise ValueError(f"{where}: variable(s) with no transformers {model_type} name: {shown}")
    return tensors


def is_training_state(name):
    """True for optimizer slots and step counters (never model weights).

    Example:
        >>> is_training_state("bert/pooler/dense/kernel/adam_m"), is_training_state("global_step")
        (True, True)
    """
    last = name.split("/")[-1]
    return last in ("adam_m", "adam_v", "Adam", "Adam_1", "global_step", "_CHECKPOINTABLE_OBJECT_GRAPH") \
        or name.startswith("_CHECKPOINTABLE")


def google_config(config, where="config.json"):
    """A transformers BERT / RoFormer ``config.json`` dict → a ``bert_config.json`` dict (with ``model_type``).

    Example:
        >>> google_config({"model_type": "bert", "vocab_size": 100, "hidden_size": 64, ...})["model_type"]
        'bert'
    """
    model_type = str(config.get("model_type", "")).lower()
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{where}: model_type {config.get('model_type')!r} is not supported "
                         f"(bert4sim converts {' and '.join(MODEL_TYPES)} models)")
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ValueError(f"{where} lacks key(s): {', '.join(missing)}")
    for key in REQUIRED_KEYS:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: {key} must be a positive integer, got {value!r}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ValueError(f"{where}: hidden_size {config['hidden_size']} is not a multiple of "
                         f"num_attention_heads {config['num_attention_heads']}")
    epsilon = config.get("layer_norm_eps", LAYER_NORM_EPSILON)
    if not isinstance(epsilon, (int, float)) or not any(abs(epsilon - e) <= 1e-15 * e
                                                         for e in DEFAULT_LAYER_NORM_EPSILON.values()):
        raise ValueError(f"{where}: layer_norm_eps {epsilon!r} is not supported (bert4sim's LayerNorms use 1e-12, "
                         "or 1e-7 in RoFormer as bert4keras built them)")
    activation = config.get("hidden_act", "gelu")
    if ACTIVATIONS.get(activation) is None:
        raise ValueError(f"{where}: hidden_act {activation!r} is not supported "
                         f"(supported: {', '.join(k for k, v in ACTIVATIONS.items() if v)})")
    if config.get("add_cross_attention"):
        raise ValueError(f"{where}: add_cross_attention is true; bert4sim has no cross-attention layers")
    if model_type == "bert" and config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{where}: position_embedding_type {config['position_embedding_type']!r} is not "
                         "supported (absolute only)")
    if model_type == "roformer":
        if config.get("rotary_value"):
            raise ValueError(f"{where}: rotary_value is true (values rotated too); bert4sim rotates queries "
                             "and keys only")
        embedding = config.get("embedding_size")
        if embedding not in (None, config["hidden_size"]):
            raise ValueError(f"{where}: embedding_size {embedding} differs from hidden_size "
                             f"{config['hidden_size']} (an embeddings_project layer); bert4sim has none")
        if (config["hidden_size"] // config["num_attention_heads"]) % 2:
            raise ValueError(f"{where}: head size {config['hidden_size'] // config['num_attention_heads']} is odd; "
                             "rotary attention needs an even head size")
    out = {key: config.get(key, CONFIG_DEFAULTS.get(key)) for key in GOOGLE_CONFIG_KEYS}
    out["hidden_act"] = ACTIVATIONS[activation]
    out["model_type"] = model_type
    if epsilon != DEFAULT_LAYER_NORM_EPSILON[model_type]:
        out["layer_norm_eps"] = float(epsilon)  # e.g. a transformers RoFormer: 1e-12 where bert4keras used 1e-7
    if config.get("is_decoder"):
        out["is_decoder"] = True  # a causal LM (bert4sim: application="lm"); kept for the way back
    return out


def transformers_config(config, model_type, architecture):
    """A ``bert_config.json`` dict → a transformers ``config.json`` dict for ``model_type``.

    Example:
        >>> transformers_config(read_json("bert_config.json"), "roformer", "RoFormerModel")["rotary_value"]
        False
    """
    out = {key: config.get(key, CONFIG_DEFAULTS.get(key)) for key in GOOGLE_CONFIG_KEYS}
    missing = [key for key in REQUIRED_KEYS if out[key] is None]
    if missing:
        raise ValueError(f"the Google config lacks key(s): {', '.join(missing)}")
    activation = out["hidden_act"]
    if activation not in TO_TRANSFORMERS_ACTIVATION:
        raise ValueError(f"hidden_act {activation!r} has no transformers equivalent")
    out.update(hidden_act=TO_TRANSFORMERS_ACTIVATION[activation], model_type=model_type,
               architectures=[architecture],
               layer_norm_eps=float(config.get("layer_norm_eps", DEFAULT_LAYER_NORM_EPSILON[model_type])), pad_token_id=0,
               tie_word_embeddings=True)
    if config.get("is_decoder"):
        out["is_decoder"] = True
    if model_type == "bert":
        out["position_embedding_type"] = "absolute"
    else:
        out.update(embedding_size=out["hidden_size"], rotary_value=False)
    return dict(sorted(out.items()))
