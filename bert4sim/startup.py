"""Process start-up for the ``bert4sim`` command and the examples: TensorFlow's start-up lines off, resume flags.

Importing TensorFlow prints 5-10 lines on stderr from its C++ side (absl's "All log messages before
absl::InitializeLog()", oneDNN's and the CPU-feature notices), which ``TF_CPP_MIN_LOG_LEVEL`` alone
does not silence in TensorFlow 2.21. :func:`quiet_tensorflow` imports TensorFlow with stderr
captured and passes on every line that is not such a notice; later C++ INFO and WARNING lines are
off (``TF_CPP_MIN_LOG_LEVEL=2``). A ``TF_CPP_MIN_LOG_LEVEL`` the user set wins: then nothing is
filtered.

Example:
    >>> from bert4sim.startup import quiet_tensorflow
    >>> quiet_tensorflow()   # before anything imports tensorflow
"""
import os
import re
import sys
import tempfile

# C++ start-up notices: absl's pre-init warning, glog-style INFO/WARNING lines (I0000 00:00:... file.cc:N]),
# and the continuation line of the CPU-feature notice.
_NOTICE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                     r"|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*"
                     r"|To enable the following instructions: .* with the appropriate compiler flags\.")


def quiet_tensorflow():
    """Import TensorFlow without its C++ start-up lines, unless the user set ``TF_CPP_MIN_LOG_LEVEL``.

    Lines that are not start-up notices still reach stderr, and an import
    that fails shows everything it printed.

    Example:
        >>> quiet_tensorflow()
    """
    if "tensorflow" in sys.modules:
        return
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:  # the user's choice wins
        import tensorflow  # noqa: F401
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", errors="replace").splitlines()
            kept = lines if failed else [line for line in lines if not _NOTICE.fullmatch(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def add_restart_flags(parser):
    """Add ``--fresh`` / ``--resume`` (exclusive) to an example script's parser, for :func:`start_run_or_exit`.

    Here, not in :mod:`bert4sim.training`, so parsing flags (and ``--help``) does not import TensorFlow.

    Example:
        >>> add_restart_flags(parser); args = parser.parse_args(["--fresh"])
    """
    restart = parser.add_mutually_exclusive_group()
    restart.add_argument("--fresh", action="store_true",
                         help="discard the backup of an interrupted run in OUTPUT and start over")
    restart.add_argument("--resume", action="store_true",
                         help="continue an interrupted run even though it was started with other flags "
                              "(by default a backup made with the same flags is resumed, one with others refused)")
    return parser
