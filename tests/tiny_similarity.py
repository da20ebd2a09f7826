"""The tiny SimBERT-layout SimilarityModel and corpus that several test files share."""
import keras

from bert4sim.models import build_transformer_model
from bert4sim.similarity import SimilarityModel
from bert4sim.tokenizers import Tokenizer

CHARS = "我想注销信用卡怎么办理银行开户查询余额今天天气很好明天下雨吗手机充电慢"
VOCAB = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(CHARS)))}
CORPUS = ["我想注销信用卡", "信用卡怎么注销", "怎么办理银行开户", "查询余额", "今天天气很好", "明天下雨吗", "手机充电慢"]


def tiny_similarity_model(seed=0, maxlen=16):
    """A 2-layer, 32-wide unilm + linear-pooler model (random weights) as a SimilarityModel."""
    keras.utils.set_random_seed(seed)
    base = build_transformer_model(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64, application="unilm", with_pool="linear",
                                   return_keras_model=False)
    encoder = keras.Model(base.model.inputs, base.model.outputs[0])
    seq2seq = keras.Model(base.model.inputs, base.model.outputs[1])
    return SimilarityModel(Tokenizer(VOCAB), encoder, seq2seq, maxlen=maxlen)
