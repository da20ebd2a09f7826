"""The ``Transformer`` builder: BERT / RoFormer graphs with bert4keras's options, and their Google checkpoints.

:func:`bert4sim.models.build_transformer_model` makes one of these; with
``return_keras_model=False`` it returns it. Its constructor takes
bert4keras's keywords (the config keys, ``keep_tokens``, ``compound_tokens``,
``with_pool`` / ``with_nsp`` / ``with_mlm``, ``custom_position_ids``,
``segment_vocab_size``, ``embedding_size``, ``hierarchical_position``,
``residual_attention_scores``, ``prefix``, ...), :meth:`Transformer.build`
bert4keras's build keywords (``layer_norm_cond*``,
``additional_input_layers``). The model's outputs carry bert4keras's Keras
mask (token id 0 masked, the first position never), which bert4keras
scripts read in their losses. The layers are exposed (``token_embedding``,
``blocks``, ``mlm_transform``, ...) for cached decoding and training heads;
checkpoints go through :mod:`bert4sim.checkpoints`.

Example:
    >>> t = Transformer(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
    ...                 intermediate_size=128, with_mlm=True)
    >>> t.build(); t.model.summary()
"""
import keras

from bert4sim import checkpoints, layers as L
from bert4sim.checkpoints import BLOCK_VARIABLES, CONFIG_DEFAULTS, EMBEDDING_VARIABLES, HEAD_VARIABLES
from bert4sim.embeddings import PositionEmbedding, TokenEmbedding
from bert4sim.functional import Model
from bert4sim.heads import MLMBias, MLMTransform, NextSentence, Pooler
from bert4sim.tensor_layers import Add

_ACTIVATIONS = {"with_pool": (False, True, "tanh", "linear", None), "with_mlm": (False, True, "softmax", "linear", None)}
BUILD_KEYWORDS = ("layer_norm_cond", "layer_norm_cond_hidden_size", "layer_norm_cond_hidden_act",
                  "additional_input_layers", "attention_caches")


def _get_attribute(obj, dotted):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


class Transformer:
    """Builder of BERT / RoFormer Keras models (bert4keras's builder object and protocol).

    Keywords are bert4keras's: the config keys (``vocab_size``,
    ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
    ``intermediate_size``, ``hidden_act``, ``max_position`` /
    ``max_position_embeddings``, ``segment_vocab_size`` / ``type_vocab_size``,
    ``dropout_rate`` / ``hidden_dropout_prob``, ...) and the options
    ``embedding_size``, ``attention_head_size``, ``attention_key_size``,
    ``sequence_length``, ``keep_tokens``, ``compound_tokens``,
    ``residual_attention_scores``, ``ignore_invalid_weights``,
    ``autoresize_weights``, ``layers`` (layers to reuse by name), ``prefix``
    (of every layer name), ``name``, ``with_pool``, ``with_nsp``, ``with_mlm``,
    ``hierarchical_position``, ``custom_position_ids``,
    ``shared_segment_embeddings``; ``model`` (``'bert'`` / ``'roformer'``)
    and ``application`` (``'encoder'`` / ``'unilm'`` / ``'lm'``; the last two
    imply the MLM head, as in bert4keras). Other keys (a config file's
    extras) are kept in :attr:`config`.

    Example:
        >>> t = build_transformer_model(config_path, checkpoint_path, return_keras_model=False)
        >>> t.model.summary(); t.save_weights_as_checkpoint("/tmp/out/bert_model.ckpt")
    """

    model_type = "bert"
    application = "encoder"

    def __init__(self, vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
                 hidden_act="gelu", dropout_rate=None, attention_dropout_rate=None, embedding_size=None,
                 attention_head_size=None, attention_key_size=None, sequence_length=None, keep_tokens=None,
                 compound_tokens=None, residual_attention_scores=False, ignore_invalid_weights=False,
                 autoresize_weights=False, layers=None, prefix=None, name=None, max_position=None,
                 segment_vocab_size=None, with_pool=False, with_nsp=False, with_mlm=False, hierarchical_position=None,
                 custom_position_ids=False, shared_segment_embeddings=False, model=None, application=None, **config):
        self.model_type = model or self.model_type
        self.application = application or self.application
        if self.model_type not in checkpoints.MODELS:
            raise ValueError(f"model must be one of {checkpoints.MODELS}, got {self.model_type!r}")
        if self.application not in checkpoints.APPLICATIONS:
            raise ValueError(f"application must be one of {checkpoints.APPLICATIONS}, got {self.application!r}")
        for option, value in (("with_pool", with_pool), ("with_mlm", with_mlm)):
            if value not in _ACTIVATIONS[option]:
                raise ValueError(f"{option} must be one of {_ACTIVATIONS[option]}, got {value!r}")
        if keep_tokens is not None:
            vocab_size = len(keep_tokens)
        if compound_tokens is not None:
            vocab_size += len(compound_tokens)
        self.vocab_size, self.hidden_size = int(vocab_size), int(hidden_size)
        self.num_hidden_layers, self.num_attention_heads = int(num_hidden_layers), int(num_attention_heads)
        self.intermediate_size, self.hidden_act = int(intermediate_size), hidden_act
        self.dropout_rate = float(config.get("hidden_dropout_prob") or 0 if dropout_rate is None else dropout_rate)
        self.attention_dropout_rate = float(config.get("attention_probs_dropout_prob") or 0
                                            if attention_dropout_rate is None else attention_dropout_rate)
        self.embedding_size = int(embedding_size or hidden_size)
        self.attention_head_size = attention_head_size
        self.attention_key_size = attention_key_size
        self.sequence_length = sequence_length
        self.keep_tokens, self.compound_tokens = keep_tokens, compound_tokens
        self.residual_attention_scores = bool(residual_attention_scores)
        self.ignore_invalid_weights, self.autoresize_weights = ignore_invalid_weights, autoresize_weights
        self.layers = {} if layers is None else layers
        self.prefix = prefix or ""
        self.name = name or self.model_type
        self.max_position = int(max_position or config.get("max_position_embeddings") or 512)
        self.segment_vocab_size = int(config.get("type_vocab_size", 2) if segment_vocab_size is None
                                      else segment_vocab_size)
        self.with_nsp = bool(with_nsp)
        self.with_pool = with_pool or self.with_nsp
        # bert4keras: language models always have the MLM head (with_mlm=False is overridden too)
        self.with_mlm = with_mlm or (self.application in ("unilm", "lm"))
        self.hierarchical_position = hierarchical_position
        self.custom_position_ids = bool(custom_position_ids)
        self.shared_segment_embeddings = bool(shared_segment_embeddings)
        if self.application == "unilm" and self.segment_vocab_size == 0:
            raise ValueError("application='unilm' reads the segment ids: it needs segment_vocab_size > 0")
        self.config = {**config, "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                       "num_hidden_layers": self.num_hidden_layers, "num_attention_heads": self.num_attention_heads,
                       "intermediate_size": self.intermediate_size, "hidden_act": hidden_act,
                       "max_position_embeddings": self.max_position,
                       "type_vocab_size": self.segment_vocab_size or config.get("type_vocab_size", 2),
                       "hidden_dropout_prob": self.dropout_rate,
                       "attention_probs_dropout_prob": self.attention_dropout_rate}
        self.config.setdefault("initializer_range", CONFIG_DEFAULTS["initializer_range"])
        if self.embedding_size != self.hidden_size:
            self.config["embedding_size"] = self.embedding_size
        self.model = self.inputs = self.input = self.outputs = self.output = None
        self.token_embedding = self.segment_embedding = self.position_embedding = self.embedding_mapping = None
        self.token_segment_add = self.embedding_norm = self.embedding_dropout = self.attention_mask = None
        self.pooler = self.nsp = self.mlm_transform = self.mlm_bias = None
        self.blocks = []
        self.layer_norm_cond = None
        self.conditional = False
        self._graph_inputs, self._attention_biases = None, {}
        self.attention_bias = self.position_bias = self.attention_scores = None
        self.built = False

    # -- building -----------------------------------------------------------

    @property
    def initializer(self):
        """A new truncated-normal initializer with the config's ``initializer_range`` (for heads added by scripts).

        Example:
            >>> head = keras.layers.Dense(2, kernel_initializer=bert.initializer)(bert.model.output)
        """
        return keras.initializers.TruncatedNormal(stddev=self.config["initializer_range"])

    @property
    def layer_norm_epsilon(self):
        """Epsilon of the embedding and block LayerNorms: the config's ``layer_norm_eps``, else bert4keras's
        (1e-12 for BERT, 1e-7 for RoFormer).

        Example:
            >>> build_transformer_model(..., model="roformer", return_keras_model=False).layer_norm_epsilon
            1e-07
        """
        default = L.ROFORMER_LAYER_NORM_EPSILON if self.model_type == "roformer" else L.LAYER_NORM_EPSILON
        return float(self.config.get("layer_norm_eps", default))

    def prefixed(self, name):
        """``name`` with the builder's ``prefix`` (bert4keras's helper).

        Example:
            >>> Transformer(..., prefix="Student-").prefixed("Embedding-Token")
            'Student-Embedding-Token'
        """
        return None if name is None else self.prefix + name

    def _layer(self, name, make):
        """The layer called ``prefix + name``: reused from :attr:`layers` when there, else made and recorded."""
        name = self.prefixed(name)
        if name not in self.layers:
            self.layers[name] = make(name)
        return self.layers[name]

    def _make_layers(self, condition_units=None):
        init, conditional = self.initializer, self.layer_norm_cond is not None
        cond_hidden, cond_act = condition_units
        E, H = self.embedding_size, self.hidden_size
        self.token_embedding = self._layer("Embedding-Token", lambda n: TokenEmbedding(
            self.vocab_size, E, init, mask_zero=True, name=n))
        if self.segment_vocab_size > 0:
            self.segment_embedding = self.token_embedding if self.shared_segment_embeddings else self._layer(
                "Embedding-Segment", lambda n: keras.layers.Embedding(
                    self.segment_vocab_size, E, embeddings_initializer=init, name=n))
            self.token_segment_add = self._layer("Embedding-Token-Segment", lambda n: Add(name=n))
        if self.model_type == "bert":
            self.position_embedding = self._layer("Embedding-Position", lambda n: PositionEmbedding(
                self.max_position, E, hierarchical=self.hierarchical_position, embeddings_initializer=init,
                custom_position_ids=self.custom_position_ids, name=n))
        self.embedding_norm = self._layer("Embedding-Norm", lambda n: L.layer_norm(
            conditional, self.layer_norm_epsilon, cond_hidden, cond_act, init, name=n))
        self.embedding_dropout = self._layer("Embedding-Dropout", lambda n: keras.layers.Dropout(
            self.dropout_rate, name=n))
        if E != H:
            self.embedding_mapping = self._layer("Embedding-Mapping", lambda n: keras.layers.Dense(
                H, kernel_initializer=init, name=n))
        mode = {"encoder": "padding", "unilm": "unilm", "lm": "lm"}[self.application]
        self.attention_mask = self._layer("Attention-Mask", lambda n: L.AttentionMask(
            mode, segment_keys=self.shared_segment_embeddings, name=n))
        self.blocks = [self._layer(f"Transformer-{i}", lambda n: L.TransformerBlock(
            self.num_attention_heads, self.intermediate_size, hidden_act=self.hidden_act,
            dropout_rate=self.dropout_rate, attention_dropout_rate=self.attention_dropout_rate,
            use_rope=self.model_type == "roformer", kernel_initializer=init,
            layer_norm_epsilon=self.layer_norm_epsilon, head_size=self.attention_head_size,
            key_size=self.attention_key_size, conditional=conditional, condition_hidden_units=cond_hidden,
            condition_hidden_activation=cond_act, return_attention_scores=self.residual_attention_scores, name=n))
            for i in range(self.num_hidden_layers)]
        if self.with_pool:
            activation = "linear" if self.with_pool == "linear" else "tanh"
            self.pooler = self._layer("Pooler-Dense", lambda n: Pooler(H, activation, init, name=n))
        if self.with_nsp:
            self.nsp = self._layer("NSP-Proba", lambda n: NextSentence(init, name=n))
        if self.with_mlm:
            epsilon = float(self.config.get("layer_norm_eps", L.LAYER_NORM_EPSILON))  # bert4keras: 1e-12 here
            self.mlm_transform = self._layer("MLM-Transform", lambda n: MLMTransform(
                self.hidden_act, init, epsilon, units=E, conditional=conditional, condition_hidden_units=cond_hidden,
                condition_hidden_activation=cond_act, name=n))
            activation = "linear" if self.with_mlm == "linear" else "softmax"
            self.mlm_bias = self._layer("MLM-Bias", lambda n: MLMBias(self.vocab_size, activation, name=n))

    def get_inputs(self):
        """The model's own inputs: ``Input-Token`` [, ``Input-Segment``] [, ``Input-Position``] (int32).

        Example:
            >>> [t.name for t in bert.get_inputs()]
            ['Input-Token', 'Input-Segment']
        """
        def make(name):
            return self._layer(name, lambda n: keras.Input(shape=(self.sequence_length,), dtype="int32", name=n))

        inputs = [make("Input-Token")]
        if self.segment_vocab_size > 0:
            inputs.append(make("Input-Segment"))
        if self.custom_position_ids:
            inputs.append(make("Input-Position"))
        return inputs

    def embed(self, token_ids, segment_ids=None, start_index=0, training=None, position_ids=None, condition=None):
        """Embedding output (token + segment [+ position], LayerNorm, dropout [, mapping to the hidden size]).

        Example:
            >>> h = transformer.embed(token_ids, segment_ids, start_index=5)
        """
        x = self.token_embedding(token_ids)
        if self.segment_embedding is not None:
            segments = self.segment_embedding(segment_ids)
            x = self.token_segment_add([x, segments]) if self.token_segment_add is not None else x + segments
        if self.position_embedding is not None:
            if self.custom_position_ids:
                x = self.position_embedding([x, position_ids])
            else:
                x = self.position_embedding(x, start_index=start_index)
        x = L.apply_norm(self.embedding_norm, x, self.layer_norm_cond if condition is None else condition)
        x = self.embedding_dropout(x, training=training)
        return x if self.embedding_mapping is None else self.embedding_mapping(x)

    def _split_inputs(self, inputs):
        inputs = list(inputs)
        token_ids = inputs.pop(0)
        segment_ids = inputs.pop(0) if self.segment_vocab_size > 0 else None
        position_ids = inputs.pop(0) if self.custom_position_ids else None
        return token_ids, segment_ids, position_ids

    def apply_embeddings(self, inputs):
        """bert4keras's protocol: the embedding output of ``inputs`` (the model inputs, or another model's).

        The blocks applied next (:meth:`apply_main_layers`) mask by these inputs.

        Example:
            >>> x = bert.apply_embeddings(bert.inputs)
        """
        self._graph_inputs = self._split_inputs(inputs)
        token_ids, segment_ids, position_ids = self._graph_inputs
        return self.embed(token_ids, segment_ids, position_ids=position_ids)

    def compute_attention_bias(self, inputs=None):
        """The boolean attention mask (padding, UniLM or causal) of ``inputs`` (default: those last embedded).

        Made once per set of inputs.

        Example:
            >>> mask = bert.compute_attention_bias(bert.inputs)   # bool [batch, length, length]
        """
        token_ids, segment_ids, _ = self._graph_inputs if inputs is None else self._split_inputs(inputs)
        key = (id(token_ids), id(segment_ids))
        if key not in self._attention_biases:
            self._attention_biases[key] = self.attention_mask(
                token_ids if segment_ids is None else [token_ids, segment_ids])
        self.attention_bias = self._attention_biases[key]
        return self.attention_bias

    def compute_position_bias(self, inputs=None):
        """RoFormer's rotary positions: the position ids of the inputs last embedded, or None for ``0..L-1``.

        Example:
            >>> bert.compute_position_bias()     # None unless custom_position_ids (RoFormer)
        """
        if self.custom_position_ids and self.model_type == "roformer":
            self.position_bias = self._graph_inputs[2]
        return self.position_bias

    def apply_main_layers(self, inputs, index):
        """bert4keras's protocol: transformer block ``index`` on ``inputs``.

        Example:
            >>> x = bert.apply_main_layers(x, 0)
        """
        block = self.blocks[index]
        outputs = block(inputs, attention_mask=self.compute_attention_bias(), condition=self.layer_norm_cond,
                        attention_bias=self.attention_scores, positions=self.compute_position_bias())
        if self.residual_attention_scores:
            outputs, self.attention_scores = outputs
        return outputs

    def mlm_logits(self, hidden, kernels=None, logits_only=True):
        """The MLM head's float32 logits of ``hidden``: transform, tied token embedding, output bias.

        The one place the head is chained, for every caller: symbolic (building
        models) or eager / traced. ``kernels`` (a
        :class:`bert4sim.precision.KernelCopies`) supplies kernels cast once for
        many calls; ``logits_only=False`` gives what the model outputs (the
        softmax of a ``with_mlm='softmax'`` head).

        Example:
            >>> logits = bert.mlm_logits(bert.blocks[-1].output)   # [batch, length, vocab]
        """
        hidden = self.mlm_transform(hidden, kernels=kernels, condition=self.layer_norm_cond)
        return self.mlm_bias(self.token_embedding(hidden, reverse=True, kernels=kernels), logits_only=logits_only)

    def heads(self, sequence_output):
        """Apply the pooler / NSP / MLM heads; returns the outputs in bert4keras order.

        Example:
            >>> pooled, probas = bert.heads(bert.blocks[-1].output)    # with_pool and with_mlm
        """
        outputs = []
        if self.pooler is not None:
            pooled = self.pooler(sequence_output)
            outputs.append(pooled if self.nsp is None else self.nsp(pooled))
        if self.mlm_transform is not None:
            outputs.append(self.mlm_logits(sequence_output, logits_only=False))
        if not outputs:
            return sequence_output
        return outputs[0] if len(outputs) == 1 else outputs

    def apply_final_layers(self, inputs):
        """bert4keras's protocol: the heads on the sequence output (see :meth:`heads`).

        Example:
            >>> outputs = bert.apply_final_layers(x)
        """
        return self.heads(inputs)

    def call(self, inputs):
        """bert4keras's protocol: embeddings, every block, then the heads.

        Example:
            >>> outputs = bert.call(bert.inputs)
        """
        x = self.apply_embeddings(inputs)
        for index in range(self.num_hidden_layers):
            x = self.apply_main_layers(x, index)
        return self.apply_final_layers(x)

    def set_inputs(self, inputs, additional_input_layers=None):
        """``inputs`` (+ ``additional_input_layers``) as the model's inputs (``inputs``, ``input``).

        Example:
            >>> bert.set_inputs(bert.get_inputs(), condition_input)
        """
        extra = additional_input_layers if isinstance(additional_input_layers, (list, tuple)) else (
            [] if additional_input_layers is None else [additional_input_layers])
        self.inputs = list(inputs) + list(extra)
        self.input = self.inputs if len(self.inputs) > 1 else self.inputs[0]

    def set_outputs(self, outputs):
        """``outputs`` as the model's outputs (``outputs``, ``output``).

        Example:
            >>> bert.set_outputs([pooled, probas])
        """
        self.outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        self.output = self.outputs if len(self.outputs) > 1 else self.outputs[0]

    @staticmethod
    def simplify(inputs):
        """bert4keras's helper: ``inputs`` without the Nones, a single one unwrapped.

        Example:
            >>> Transformer.simplify([x, None])    # x
        """
        inputs = [x for x in inputs if x is not None]
        return inputs[0] if len(inputs) == 1 else inputs

    def build(self, layer_norm_cond=None, layer_norm_cond_hidden_size=None, layer_norm_cond_hidden_act=None,
              additional_input_layers=None, attention_caches=None, **kwargs):
        """Create the layers and the functional Keras model (``self.model``); a second call does nothing.

        ``layer_norm_cond`` (a Keras tensor ``[batch, c]``) makes every
        LayerNorm conditional on it (embeddings, both norms of each block,
        the MLM head), through a ``layer_norm_cond_hidden_size`` projection
        with ``layer_norm_cond_hidden_act`` when given;
        ``additional_input_layers`` (an ``Input`` or a list) are appended to
        the model's inputs, the condition being computed from them. Other
        keywords (the config passed to the constructor) are ignored, as in
        bert4keras.

        Example:
            >>> c_in = keras.Input(shape=(8,))
            >>> t.build(layer_norm_cond=c_in, additional_input_layers=c_in)
        """
        if self.built:
            return self.model
        if attention_caches:
            raise ValueError("attention_caches is not supported: bert4sim's key/value cache is "
                             "bert4sim.generation.CachedDecoder")
        if layer_norm_cond is not None and len(layer_norm_cond.shape) != 2:
            raise ValueError(f"layer_norm_cond must be [batch, features] (one vector per example), got shape "
                             f"{tuple(layer_norm_cond.shape)}")
        self.layer_norm_cond, self.conditional = layer_norm_cond, layer_norm_cond is not None
        self._make_layers((layer_norm_cond_hidden_size, layer_norm_cond_hidden_act or "linear"))
        inputs = self.get_inputs()
        self.set_inputs(inputs, additional_input_layers)
        self.set_outputs(self.call(inputs))
        self.model = Model(self.inputs, self.output, name=self.name)
        self.built = True
        return self.model

    @classmethod
    def from_model(cls, model):
        """Recover the builder view of a Keras model built (or reloaded) by bert4sim.

        Example:
            >>> t = Transformer.from_model(keras.models.load_model("m.keras"))
        """
        names = {layer.name: layer for layer in model.layers}
        tokens = [name for name, layer in names.items()
                  if name.endswith("Embedding-Token") and isinstance(layer, TokenEmbedding)]
        prefix = tokens[0][: -len("Embedding-Token")] if len(tokens) == 1 else None
        if prefix is None or f"{prefix}Transformer-0" not in names:
            raise ValueError(
                f"model {model.name!r} was not built by bert4sim.build_transformer_model "
                "(no 'Embedding-Token' / 'Transformer-0' layers)"
            )
        get = lambda name: names.get(prefix + name)  # noqa: E731
        blocks = []
        while get(f"Transformer-{len(blocks)}") is not None:
            blocks.append(get(f"Transformer-{len(blocks)}"))
        first, token, position = blocks[0], get("Embedding-Token"), get("Embedding-Position")
        mapping, segment = get("Embedding-Mapping"), get("Embedding-Segment")
        input_names = [tensor.name for tensor in model.inputs]
        pooler, nsp, mlm_bias = get("Pooler-Dense"), get("NSP-Proba"), get("MLM-Bias")
        self = cls(
            vocab_size=token.input_dim,
            hidden_size=mapping.units if mapping is not None else token.output_dim,
            num_hidden_layers=len(blocks),
            num_attention_heads=first.num_heads,
            intermediate_size=first.intermediate_size,
            hidden_act=first.hidden_act,
            dropout_rate=first.dropout_rate,
            attention_dropout_rate=first.attention_dropout_rate,
            embedding_size=token.output_dim,
            attention_head_size=first.head_size,
            attention_key_size=first.key_size,
            residual_attention_scores=first.return_attention_scores,
            prefix=prefix,
            name=model.name,
            max_position=position.input_dim if position is not None else 512,
            segment_vocab_size=segment.input_dim if segment is not None else (
                2 if f"{prefix}Input-Segment" in input_names else 0),
            with_pool=False if pooler is None else pooler.activation,
            with_nsp=nsp is not None,
            with_mlm=False if mlm_bias is None else mlm_bias.activation,
            hierarchical_position=None if position is None else position.hierarchical,
            custom_position_ids=f"{prefix}Input-Position" in input_names,
            shared_segment_embeddings=segment is None and f"{prefix}Input-Segment" in input_names,
            model="bert" if position is not None else "roformer",
            application={"padding": "encoder", "unilm": "unilm", "lm": "lm"}[get("Attention-Mask").mode],
            initializer_range=CONFIG_DEFAULTS["initializer_range"],
        )
        if first.layer_norm_epsilon != self.layer_norm_epsilon:
            self.config["layer_norm_eps"] = first.layer_norm_epsilon
        if "Pooling" in names:  # a sentence encoder (build_sentence_encoder): its pooling goes into bert_config.json
            self.config["pooling"] = names["Pooling"].mode
        self.model, self.layers = model, names
        self.inputs, self.input, self.outputs, self.output = model.inputs, model.input, model.outputs, model.output
        self.token_embedding, self.position_embedding, self.embedding_mapping = token, position, mapping
        self.segment_embedding = token if self.shared_segment_embeddings else segment
        self.token_segment_add = get("Embedding-Token-Segment")
        self.embedding_norm, self.embedding_dropout = get("Embedding-Norm"), get("Embedding-Dropout")
        self.attention_mask, self.blocks, self.pooler, self.nsp = get("Attention-Mask"), blocks, pooler, nsp
        self.mlm_transform, self.mlm_bias = get("MLM-Transform"), mlm_bias
        self.conditional = first.conditional
        self.built = True
        return self

    # -- checkpoint IO --------------------------------------------------------

    def variable_mapping(self):
        """``{checkpoint name (without scope): Keras variable}`` for this model.

        (bert4keras's method of this name maps layer names to lists of
        checkpoint names; this one maps each checkpoint name to its variable.)

        Example:
            >>> sorted(t.variable_mapping())[:2]
            ['cls/predictions/output_bias', 'cls/predictions/transform/LayerNorm/beta']
        """
        layers = {layer.name: layer for layer in self.model.layers}
        mapping = {}
        for name, layer_name, attribute in EMBEDDING_VARIABLES + HEAD_VARIABLES:
            layer = layers.get(self.prefixed(layer_name))
            if layer is not None:
                mapping[name] = _get_attribute(layer, attribute)
        for i, block in enumerate(self.blocks):
            for name, attribute in BLOCK_VARIABLES:
                mapping[name.format(i=i)] = _get_attribute(block, attribute)
        return mapping

    def load_weights_from_checkpoint(self, checkpoint_path, keep_tokens=None, allow_missing_heads=False, prefix=None,
                                     allow_unused=False, ignore_invalid_weights=None, compound_tokens=None,
                                     autoresize=None):
        """Load a Google-format checkpoint into the model (options: :func:`bert4sim.checkpoints.load_weights`).

        ``keep_tokens``, ``compound_tokens``, ``ignore_invalid_weights`` and
        ``autoresize`` default to what the model was built with (bert4keras's
        behaviour), so a model built without a checkpoint loads one later
        with its vocabulary changes.

        Example:
            >>> t.load_weights_from_checkpoint("checkpoints/simbert/bert_model.ckpt")
        """
        choose = lambda given, built: built if given is None else given  # noqa: E731
        checkpoints.load_weights(
            self.variable_mapping(), checkpoint_path, choose(keep_tokens, self.keep_tokens), allow_missing_heads,
            prefix, allow_unused, bool(choose(ignore_invalid_weights, self.ignore_invalid_weights)),
            compound_tokens=choose(compound_tokens, self.compound_tokens),
            autoresize=bool(choose(autoresize, self.autoresize_weights)), hidden_act=self.hidden_act,
            unused_ok=() if self.segment_embedding is not None and not self.shared_segment_embeddings
            else ("embeddings/token_type_embeddings",))
        return self

    def load_embeddings(self, embeddings):
        """bert4keras's helper: rows of a vocabulary-sized array after ``keep_tokens``, then ``compound_tokens``.

        Example:
            >>> t.load_embeddings(word_embeddings).shape[0] == t.vocab_size
            True
        """
        if self.keep_tokens is not None:
            embeddings = checkpoints._select_rows(embeddings, self.keep_tokens, "embeddings")
        if self.compound_tokens is not None:
            embeddings = checkpoints.compound_rows(embeddings, self.compound_tokens, "embeddings")
        return embeddings

    def save_weights_as_checkpoint(self, checkpoint_path, config_path=None, prefix="bert", vocab=None):
        """Save the weights as a Google-format checkpoint (+ ``bert_config.json`` [+ ``vocab.txt``]).

        The result loads with :func:`build_transformer_model` and with
        bert4keras; see :func:`bert4sim.checkpoints.save_weights`. As in
        bert4keras, only the checkpoint's variables are written: the kernels
        of conditional LayerNorms are not (save those models with
        ``save_weights``).

        Example:
            >>> t.save_weights_as_checkpoint("out/bert_model.ckpt", vocab=tokenizer.token_dict)
        """
        return checkpoints.save_weights(self.variable_mapping(), self.config, checkpoint_path, config_path,
                                        prefix, vocab)
