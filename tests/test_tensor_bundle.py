"""numpy-only TensorFlow checkpoint IO (bert4sim.tensor_bundle, bert4sim.crc32c) against TensorFlow itself."""
import os

import numpy as np
import pytest
import tensorflow as tf

from bert4sim.crc32c import crc32c, mask, unmask
from bert4sim.tensor_bundle import CheckpointFormatError, read_bundle, read_index, variable_shapes, write_bundle


def _crc_bytewise(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize("length", [0, 1, 9, 4095, 4096, 4097, 70001])
def test_crc32c_matches_the_bitwise_definition(length):
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    assert crc32c(data) == _crc_bytewise(data)
    assert crc32c(data[length // 3:], crc32c(data[:length // 3])) == crc32c(data)


def test_crc32c_known_value_and_mask():
    assert crc32c(b"123456789") == 0xE3069283  # the Castagnoli check value
    assert unmask(mask(0xE3069283)) == 0xE3069283 and mask(0) == 0xA282EAD8


def _random_arrays(rng, count=6):
    arrays = {
        "bert/embeddings/word_embeddings": rng.standard_normal((50, 16)).astype("float32"),
        "f16": rng.standard_normal((3, 5)).astype("float16"),
        "f64": rng.standard_normal(7),
        "i32": rng.integers(-1000, 1000, (4, 2)).astype("int32"),
        "i64": rng.integers(-2**40, 2**40, 3),
        "scalar": np.float32(3.5),
        "empty": np.zeros((0, 4), "float32"),
        "flags": np.array([True, False]),
        "u8": np.arange(9, dtype="uint8"),
    }
    for i in range(count):
        arrays[f"layer_{i}/kernel"] = rng.standard_normal((4, 3)).astype("float32")
    return arrays


def _tf_save(prefix, arrays):
    names = sorted(arrays)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(arrays[n]) for n in names])


@pytest.mark.parametrize("extra", [0, 400])  # 400 more names: an index of several 4 KiB blocks
def test_reads_what_tensorflow_writes(tmp_path, extra):
    arrays = _random_arrays(np.random.default_rng(extra), count=6 + extra)
    arrays["bf16"] = tf.constant([1.5, -2.25, 3e20], tf.bfloat16).numpy()
    prefix = str(tmp_path / "tf.ckpt")
    _tf_save(prefix, arrays)
    assert os.path.getsize(prefix + ".index") > (4096 if extra else 0)
    read = read_bundle(prefix)
    assert sorted(read) == sorted(arrays)
    for name, value in arrays.items():
        expected = np.asarray(value, dtype="float32") if name == "bf16" else np.asarray(value)
        assert read[name].dtype == expected.dtype and read[name].shape == expected.shape, name
        np.testing.assert_array_equal(read[name], expected)
    assert read_bundle(prefix, ["bf16"], bfloat16="bfloat16")["bf16"].dtype.name == "bfloat16"
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    assert variable_shapes(prefix) == {n: tuple(s) for n, s in shapes.items()}


@pytest.mark.parametrize("extra", [0, 400])
def test_tensorflow_reads_what_we_write(tmp_path, extra):
    arrays = _random_arrays(np.random.default_rng(1 + extra), count=6 + extra)
    import ml_dtypes

    arrays["bf16"] = np.array([1.5, -2.25, 3e20], dtype=ml_dtypes.bfloat16)
    prefix = str(tmp_path / "ours.ckpt")
    write_bundle(prefix, arrays)
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    assert sorted(reader.get_variable_to_shape_map()) == sorted(arrays)
    for name, value in arrays.items():
        got = reader.get_tensor(name)
        assert dtypes[name].name == np.asarray(value).dtype.name, name
        np.testing.assert_array_equal(np.asarray(got).astype(np.asarray(value).dtype), value)
    # and the restore op (which checks every CRC) agrees
    restored = tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=["layer_0/kernel"], shape_and_slices=[""],
                                    dtypes=[tf.float32])
    np.testing.assert_array_equal(restored[0].numpy(), arrays["layer_0/kernel"])


def test_tf_train_checkpoint_is_read_names_only_for_strings(tmp_path):
    variable = tf.Variable(np.arange(6, dtype="float32").reshape(2, 3))
    prefix = tf.train.Checkpoint(weights=variable).write(str(tmp_path / "ckpt"))
    entries = read_index(prefix)
    assert entries["_CHECKPOINTABLE_OBJECT_GRAPH"].dtype == "string"
    arrays = read_bundle(prefix)
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" not in arrays
    np.testing.assert_array_equal(arrays["weights/.ATTRIBUTES/VARIABLE_VALUE"], variable.numpy())
    with pytest.raises(ValueError, match="_CHECKPOINTABLE_OBJECT_GRAPH is a string tensor"):
        read_bundle(prefix, ["_CHECKPOINTABLE_OBJECT_GRAPH"])


def test_large_tensor_round_trip(tmp_path):
    big = np.random.default_rng(3).standard_normal((1000, 768)).astype("float32")  # 3 MB: the numpy CRC path
    prefix = str(tmp_path / "big.ckpt")
    write_bundle(prefix, {"w": big})
    np.testing.assert_array_equal(tf.train.load_checkpoint(prefix).get_tensor("w"), big)
    np.testing.assert_array_equal(read_bundle(prefix)["w"], big)


def test_damage_is_reported_with_the_file(tmp_path):
    prefix = str(tmp_path / "m.ckpt")
    write_bundle(prefix, {"a": np.arange(100, dtype="float32"), "b": np.ones(3, "float32")})
    data = prefix + ".data-00000-of-00001"
    raw = bytearray(open(data, "rb").read())
    raw[10] ^= 0xFF
    open(data, "wb").write(bytes(raw))
    with pytest.raises(CheckpointFormatError, match=r"data-00000-of-00001: a fails its CRC-32C check"):
        read_bundle(prefix)
    assert read_bundle(prefix, verify=False)["b"].tolist() == [1, 1, 1]
    open(data, "wb").write(bytes(raw[:200]))
    with pytest.raises(CheckpointFormatError, match="the file ends first"):
        read_bundle(prefix)
    os.remove(data)
    with pytest.raises(FileNotFoundError, match="data file not found.*data-00000-of-00001"):
        read_bundle(prefix)
    index = bytearray(open(prefix + ".index", "rb").read())
    index[5] ^= 0x01
    open(prefix + ".index", "wb").write(bytes(index))
    with pytest.raises(CheckpointFormatError, match=r"m.ckpt.index: block at byte 0 fails its CRC-32C"):
        read_index(prefix)
    open(prefix + ".index", "wb").write(bytes(index[:-10]))
    with pytest.raises(CheckpointFormatError, match="bad magic number"):
        read_index(prefix)
    open(prefix + ".index", "wb").write(b"x")
    with pytest.raises(CheckpointFormatError, match="too short"):
        read_index(prefix)
    with pytest.raises(FileNotFoundError, match="checkpoint index not found"):
        read_index(str(tmp_path / "nothing"))


def test_truncated_index_block(tmp_path):
    prefix = str(tmp_path / "m.ckpt")
    write_bundle(prefix, {"a": np.zeros(3, "float32")})
    index = open(prefix + ".index", "rb").read()
    footer = index[-48:]
    # keep the footer but cut the blocks before it: handles now point past the end
    open(prefix + ".index", "wb").write(index[:20] + footer)
    with pytest.raises(CheckpointFormatError, match="runs past the end of the file"):
        read_index(prefix)


def test_write_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no tensors"):
        write_bundle(str(tmp_path / "x"), {})
    with pytest.raises(ValueError, match="non-empty strings"):
        write_bundle(str(tmp_path / "x"), {"": np.zeros(1)})
    with pytest.raises(TypeError, match="dtype <U1 cannot be written|dtype str32 cannot be written"):
        write_bundle(str(tmp_path / "x"), {"s": np.array(["a"])})
