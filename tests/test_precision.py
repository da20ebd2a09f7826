"""precision="auto": the decision from CPU flags and calibrations, its cache, its one message per process.

Nothing here times anything: CPU flags and calibration results are injected.
"""
import json

import pytest

from bert4sim import precision as auto
from bert4sim.precision import auto_precision, choose_precision, cpu_info, resolve_precision

XEON_AMX = {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}
EPYC = {"avx512f", "avx512_bf16"}
OLD = {"avx2", "avx512f"}


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """Each test starts as a new process would: nothing decided yet, no pinned answer."""
    monkeypatch.setattr(auto, "_CHOSEN", {})
    monkeypatch.delenv(auto.PIN_VARIABLE, raising=False)


def never_calibrate():
    raise AssertionError("calibrated although the CPU flags decide")


class Calibration:
    """A stand-in for the timing: returns the given seconds and counts its calls."""

    def __init__(self, float32, bfloat16):
        self.result, self.calls = {"float32": float32, "bfloat16": bfloat16}, 0

    def __call__(self):
        self.calls += 1
        return dict(self.result)


def test_cpu_flags_alone_decide_with_amx_or_without_any_bfloat16_instructions():
    assert choose_precision(XEON_AMX) == ("bfloat16", "AMX")
    assert choose_precision(OLD)[0] == "float32"
    assert choose_precision(set())[0] == "float32"
    assert choose_precision(EPYC) == (None, "needs a calibration")
    assert choose_precision(XEON_AMX | {"gpu"})[0] is None  # a GPU: where the products run is not the CPU


@pytest.mark.parametrize("float32, bfloat16, expected", [
    (1.0, 0.55, "bfloat16"),   # AMD EPYC-like: bfloat16 products faster
    (1.0, 1.64, "float32"),    # Xeon without AMX: bfloat16 at 0.61x
    (1.0, 0.95, "float32"),    # within the noise margin: keep float32
    (1.0, 0.90, "bfloat16"),   # exactly the margin
])
def test_calibration_chooses_bfloat16_only_when_clearly_faster(float32, bfloat16, expected):
    precision, reason = choose_precision(EPYC, {"float32": float32, "bfloat16": bfloat16})
    assert precision == expected
    assert f"{float32 / bfloat16:.2f}x" in reason


@pytest.mark.parametrize("calibration", [{}, {"float32": 1.0}, {"float32": 0.0, "bfloat16": 1.0},
                                         {"float32": "fast", "bfloat16": 1.0}, [1.0, 2.0]])
def test_damaged_calibration_is_an_error(calibration):
    with pytest.raises(ValueError, match="calibration must give positive seconds"):
        choose_precision(EPYC, calibration)


def test_calibration_runs_once_per_machine_and_is_cached_on_disk(tmp_path, capsys):
    machine = ("AMD EPYC | no GPU | TensorFlow 2.21.0", "AMD EPYC", EPYC)
    calibration = Calibration(0.020, 0.011)
    assert auto_precision(machine, calibration, directory=tmp_path) == "bfloat16"
    assert auto_precision(machine, calibration, directory=tmp_path) == "bfloat16"
    assert calibration.calls == 1
    printed = capsys.readouterr().err
    assert printed.count("bert4sim: precision auto -> bfloat16 on AMD EPYC") == 1
    assert "1.82x" in printed and "measured now" in printed
    cached = json.loads((tmp_path / "precision.json").read_text())
    assert cached[machine[0]]["float32"] == 0.020 and cached[machine[0]]["bfloat16"] == 0.011

    auto._CHOSEN.clear()  # a new process on the same machine reads the cache
    assert auto_precision(machine, never_calibrate, directory=tmp_path) == "bfloat16"
    assert "cached in" in capsys.readouterr().err


def test_another_machine_or_tensorflow_version_calibrates_again(tmp_path):
    first = Calibration(0.010, 0.020)
    assert auto_precision(("Xeon | no GPU | TensorFlow 2.21.0", "Xeon", EPYC), first, tmp_path) == "float32"
    second = Calibration(0.020, 0.010)
    assert auto_precision(("Xeon | no GPU | TensorFlow 2.22.0", "Xeon", EPYC), second, tmp_path) == "bfloat16"
    assert first.calls == second.calls == 1
    assert len(json.loads((tmp_path / "precision.json").read_text())) == 2


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"EPYC": {"float32": -1}}'])
def test_unreadable_cache_is_measured_again_and_rewritten(tmp_path, content):
    (tmp_path / "precision.json").write_text(content)
    calibration = Calibration(0.010, 0.020)
    assert auto_precision(("EPYC", "EPYC", EPYC), calibration, tmp_path, quiet=True) == "float32"
    assert calibration.calls == 1
    assert json.loads((tmp_path / "precision.json").read_text())["EPYC"]["bfloat16"] == 0.020


def test_unwritable_cache_still_decides_and_says_why(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    calibration = Calibration(0.020, 0.010)
    assert auto_precision(("EPYC", "EPYC", EPYC), calibration, blocker / "cache") == "bfloat16"
    assert "could not cache the precision calibration" in capsys.readouterr().err


def test_flags_that_decide_write_no_cache(tmp_path):
    assert auto_precision(("Xeon AMX", "Xeon AMX", XEON_AMX), never_calibrate, tmp_path, quiet=True) == "bfloat16"
    assert auto_precision(("old", "old", OLD), never_calibrate, tmp_path, quiet=True) == "float32"
    assert not (tmp_path / "precision.json").exists()


def test_pinned_answer_and_explicit_precisions(monkeypatch, capsys):
    monkeypatch.setenv(auto.PIN_VARIABLE, "bfloat16")
    assert resolve_precision("auto") == "bfloat16"
    assert resolve_precision("auto") == "bfloat16"
    assert capsys.readouterr().err.count("set by $BERT4SIM_AUTO_PRECISION") == 1
    assert resolve_precision("float32") == "float32"
    monkeypatch.setenv(auto.PIN_VARIABLE, "fp8")
    with pytest.raises(ValueError, match="BERT4SIM_AUTO_PRECISION must be 'float32' or 'bfloat16', got 'fp8'"):
        resolve_precision("auto")
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'float32', 'bfloat16'\), got 'float16'"):
        resolve_precision("float16")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("BERT4SIM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert auto.cache_dir() == str(tmp_path / "bert4sim")
    monkeypatch.setenv("BERT4SIM_CACHE_DIR", str(tmp_path / "mine"))
    assert auto.cache_dir() == str(tmp_path / "mine")


def test_cpu_info_reads_model_name_and_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert cpu_info(str(cpuinfo)) == ("AMD EPYC", {"fpu", "avx512f", "avx512_bf16"})
    name, flags = cpu_info(str(tmp_path / "absent"))
    assert name and flags == set()
