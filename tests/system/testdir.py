"""Shared by the system tests: a test's scratch directory under the system's temporary
directory, removed when the test ends well and kept (and named on stderr) when it fails, so
that repeated runs do not fill /tmp and a failure can still be looked into.

A test "ends well" when its process exits with status 0: it returns from its main, or calls
sys.exit() with 0 or None. A non-zero or text sys.exit() and an exception that escapes keep
the directories."""
import atexit
import shutil
import sys
import tempfile

_dirs = []
_failed = []
_real_exit = sys.exit
_real_hook = sys.excepthook


def _exit(code=None):
    if code not in (None, 0):
        _failed.append(code)
    _real_exit(code)


def _hook(kind, value, tb):
    _failed.append(kind)
    _real_hook(kind, value, tb)


def _cleanup():
    for d in _dirs:
        if _failed:
            print(f"testdir: kept {d} for a look", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


def mkdtemp(prefix):
    """tempfile.mkdtemp(prefix=prefix), removed at exit unless the test failed."""
    if not _dirs:
        sys.exit = _exit
        sys.excepthook = _hook
        atexit.register(_cleanup)
    d = tempfile.mkdtemp(prefix=prefix)
    _dirs.append(d)
    return d
