"""An independent numpy forward pass of BERT / RoFormer from Google-named arrays.

Written from the bert4keras formulas (see shared/reference/bert4keras_facts.md),
deliberately in a different style from bert4sim.layers: RoPE by the
interleave trick ``x*cos_pos + x2*sin_pos``, masks as additive -1e12 biases,
LayerNorm by mean/variance. Tests compare bert4sim models against it.
"""
import math

import numpy as np


def layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def rope_bert4keras(x):
    """x: [batch, length, heads, d]; bert4keras's sinusoid + interleave formula."""
    length, d = x.shape[1], x.shape[-1]
    pos = np.arange(length, dtype=np.float64)[:, None]
    freq = np.power(10000.0, -2 * np.arange(d // 2, dtype=np.float64) / d)
    angles = pos * freq  # [L, d/2]
    table = np.stack([np.sin(angles), np.cos(angles)], -1).reshape(length, d)
    cos_pos = np.repeat(table[:, 1::2], 2, axis=-1)[None, :, None, :]
    sin_pos = np.repeat(table[:, ::2], 2, axis=-1)[None, :, None, :]
    x2 = np.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)
    return x * cos_pos + x2 * sin_pos


def attention_bias(token_ids, segment_ids, application):
    length = token_ids.shape[1]
    keys = (token_ids != 0)[:, None, :]
    if application == "unilm":
        c = np.cumsum(segment_ids, axis=1)
        allowed = c[:, None, :] <= c[:, :, None]
    elif application == "lm":
        allowed = np.tril(np.ones((length, length), bool))[None]
    else:
        allowed = np.ones((1, length, length), bool)
    allowed = allowed & keys
    return (1.0 - allowed) * -1e12  # [B, L, L]


def forward(w, config, token_ids, segment_ids, model="bert", application="encoder",
            with_pool=False, with_mlm=False, prefix="bert"):
    """Returns the outputs bert4keras would return for these Google-named weights."""
    token_ids = np.asarray(token_ids)
    segment_ids = np.asarray(segment_ids)
    p = prefix + "/"
    heads = config["num_attention_heads"]
    x = w[p + "embeddings/word_embeddings"][token_ids] + w[p + "embeddings/token_type_embeddings"][segment_ids]
    if model == "bert":
        x = x + w[p + "embeddings/position_embeddings"][: token_ids.shape[1]][None]
    x = layer_norm(x, w[p + "embeddings/LayerNorm/gamma"], w[p + "embeddings/LayerNorm/beta"])
    bias = attention_bias(token_ids, segment_ids, application)[:, None]  # [B,1,L,L]
    batch, length, hidden = x.shape
    d = hidden // heads
    for i in range(config["num_hidden_layers"]):
        q_ = p + f"encoder/layer_{i}/"

        def dense(h, name):
            return h @ w[q_ + name + "/kernel"] + w[q_ + name + "/bias"]

        q = dense(x, "attention/self/query").reshape(batch, length, heads, d)
        k = dense(x, "attention/self/key").reshape(batch, length, heads, d)
        v = dense(x, "attention/self/value").reshape(batch, length, heads, d)
        if model == "roformer":
            q, k = rope_bert4keras(q), rope_bert4keras(k)
        a = np.einsum("bjhd,bkhd->bhjk", q, k) / math.sqrt(d) + bias
        o = np.einsum("bhjk,bkhd->bjhd", softmax(a), v).reshape(batch, length, hidden)
        x = layer_norm(x + dense(o, "attention/output/dense"),
                       w[q_ + "attention/output/LayerNorm/gamma"], w[q_ + "attention/output/LayerNorm/beta"])
        f = dense(gelu(dense(x, "intermediate/dense")), "output/dense")
        x = layer_norm(x + f, w[q_ + "output/LayerNorm/gamma"], w[q_ + "output/LayerNorm/beta"])
    outputs = []
    if with_pool:
        pooled = x[:, 0] @ w[p + "pooler/dense/kernel"] + w[p + "pooler/dense/bias"]
        outputs.append(pooled if with_pool == "linear" else np.tanh(pooled))
    if with_mlm:
        h = gelu(x @ w["cls/predictions/transform/dense/kernel"] + w["cls/predictions/transform/dense/bias"])
        h = layer_norm(h, w["cls/predictions/transform/LayerNorm/gamma"], w["cls/predictions/transform/LayerNorm/beta"])
        logits = h @ w[p + "embeddings/word_embeddings"].T + w["cls/predictions/output_bias"]
        outputs.append(logits if with_mlm == "linear" else softmax(logits))
    if not outputs:
        return x
    return outputs[0] if len(outputs) == 1 else outputs


def random_checkpoint_arrays(config, model="bert", with_pool=True, with_mlm=True, seed=0, prefix="bert"):
    """Random Google-named arrays for a config (a stand-in for a released checkpoint)."""
    rng = np.random.default_rng(seed)
    h, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]

    def n(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype("float32")

    p = prefix + "/"
    w = {
        p + "embeddings/word_embeddings": n(vocab, h, scale=0.5),
        p + "embeddings/token_type_embeddings": n(config.get("type_vocab_size", 2), h),
        p + "embeddings/LayerNorm/gamma": 1 + n(h, scale=0.1),
        p + "embeddings/LayerNorm/beta": n(h, scale=0.1),
    }
    if model == "bert":
        w[p + "embeddings/position_embeddings"] = n(config.get("max_position_embeddings", 512), h)
    for i in range(config["num_hidden_layers"]):
        q = p + f"encoder/layer_{i}/"
        for name in ("attention/self/query", "attention/self/key", "attention/self/value",
                     "attention/output/dense"):
            w[q + name + "/kernel"], w[q + name + "/bias"] = n(h, h), n(h, scale=0.05)
        w[q + "intermediate/dense/kernel"], w[q + "intermediate/dense/bias"] = n(h, inter), n(inter, scale=0.05)
        w[q + "output/dense/kernel"], w[q + "output/dense/bias"] = n(inter, h), n(h, scale=0.05)
        for name in ("attention/output/LayerNorm", "output/LayerNorm"):
            w[q + name + "/gamma"], w[q + name + "/beta"] = 1 + n(h, scale=0.1), n(h, scale=0.1)
    if with_pool:
        w[p + "pooler/dense/kernel"], w[p + "pooler/dense/bias"] = n(h, h), n(h, scale=0.05)
    if with_mlm:
        w["cls/predictions/transform/dense/kernel"] = n(h, h)
        w["cls/predictions/transform/dense/bias"] = n(h, scale=0.05)
        w["cls/predictions/transform/LayerNorm/gamma"] = 1 + n(h, scale=0.1)
        w["cls/predictions/transform/LayerNorm/beta"] = n(h, scale=0.1)
        w["cls/predictions/output_bias"] = n(vocab, scale=0.1)
    # The NSP head exists in Google checkpoints; loaders must ignore it.
    w["cls/seq_relationship/output_weights"] = n(2, h)
    return w
