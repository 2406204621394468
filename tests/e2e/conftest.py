"""Shared fixtures for end-to-end tests: the built binary, run as a user would.

The suite also runs against the ASan+UBSan build (TYCHO=build-asan/tycho).
Every process a test starts inherits ASAN_OPTIONS/UBSAN_OPTIONS set here:
leak detection on, stop at the first error, and each report written to a
file of its own (log_path) in SANITIZER_DIR, whoever started the process
(a Server helper, a shell, a `--workers` parent). The teardown of the test
during which a report file appeared fails with the report as its message.
UBSan built with -fno-sanitize-recover (ours) ignores log_path and prints
on stderr, so every helper that ends a tycho process (run, the Server
classes) also checks its stderr. With a release binary no report file is
ever written."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TYCHO = os.environ.get("TYCHO", os.path.join(ROOT, "build", "tycho"))

# A report on a stream the test reads (a child whose env dropped the options
# prints to stderr): ASan/LSan/UBSan headers and UBSan's "runtime error:".
SANITIZER = re.compile(rb"Sanitizer|runtime error:")



def _sanitized(path):
    """True for an ASan build (gcc links libasan, clang embeds its runtime:
    both leave the __asan_init symbol in the binary)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = _sanitized(TYCHO)


def release_only(reason):
    """Marks a test about the release binary alone (valgrind cannot run an
    ASan build; the .deb is built from the release build). Against an ASan
    binary such tests are deselected at collection, not skipped: they run
    in the release stage of scripts/run-tests."""
    return pytest.mark.release_only(reason=reason)


def pytest_configure(config):
    config.addinivalue_line("markers", "release_only(reason): runs only against a release binary")


def pytest_collection_modifyitems(config, items):
    if not SANITIZED:
        return
    keep = [i for i in items if i.get_closest_marker("release_only") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


SANITIZER_DIR = tempfile.mkdtemp(prefix="tycho-e2e-sanitizer-")
os.chmod(SANITIZER_DIR, 0o1777)  # children run as another user (setpriv) write here too


def _options(name, defaults, forced):
    """defaults, then the caller's own options (which win over them), then
    forced (which win over everything): later flags override earlier ones."""
    own = os.environ.get(name, "")
    parts = [f"{k}={v}" for k, v in defaults.items()]
    parts += [p for p in own.split(":") if p]
    parts += [f"{k}={v}" for k, v in forced.items()]
    os.environ[name] = ":".join(parts)


_options("ASAN_OPTIONS", {"abort_on_error": 0, "halt_on_error": 1},
         {"detect_leaks": 1, "log_path": os.path.join(SANITIZER_DIR, "asan")})
_options("UBSAN_OPTIONS", {"print_stacktrace": 1, "halt_on_error": 1},
         {"log_path": os.path.join(SANITIZER_DIR, "ubsan")})

_reported = set()


def sanitizer_reports():
    """The report files written since the last call, as one text ('' if none)."""
    texts = []
    for name in sorted(os.listdir(SANITIZER_DIR)):
        if name in _reported:
            continue
        _reported.add(name)
        with open(os.path.join(SANITIZER_DIR, name), errors="replace") as f:
            texts.append(f"--- {name} (sanitizer report of process {name.rsplit('.', 1)[-1]})\n"
                         + f.read())
    return "\n".join(texts)


def check_no_sanitizer_report(output, what="tycho"):
    """Fails when output (str or bytes a process wrote) holds a sanitizer report."""
    data = output.encode(errors="replace") if isinstance(output, str) else (output or b"")
    assert not SANITIZER.search(data), \
        f"{what}: sanitizer report:\n" + data.decode(errors="replace")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test's teardown phase fails when a report file appeared since the
    previous test's: a process ended with one during the test, or while the
    fixtures it was the last user of (a module's server) were torn down."""
    outcome = yield
    if call.when != "teardown":
        return
    text = sanitizer_reports()
    if text:
        report = outcome.get_result()
        report.outcome = "failed"
        report.longrepr = f"sanitizer report from a process that ended during {item.nodeid}" \
                          f" (the test, or fixtures torn down after it):\n{text}"


def pytest_sessionfinish(session):
    text = sanitizer_reports()  # a process that outlived the last teardown
    if text:
        print(f"\nsanitizer report after the last test:\n{text}")
        session.exitstatus = 1
    shutil.rmtree(SANITIZER_DIR, ignore_errors=True)


def run(*args, input=None, timeout=30, cwd=None, env=None):
    """Runs tycho with args; returns CompletedProcess with text output.
    Fails when the process wrote a sanitizer report."""
    r = subprocess.run([TYCHO, *args], input=input, capture_output=True,
                       text=True, timeout=timeout, cwd=cwd, env=env)
    check_no_sanitizer_report(r.stderr, f"tycho {' '.join(map(str, args))}")
    return r


def end(proc, pump=None, first=5, last=20):
    """Ends a tycho process the way a user would, so an ASan build checks for
    leaks at exit: SIGTERM (a server drains), after `first` seconds a second
    SIGTERM (stop at once), after `last` more SIGKILL. pump(timeout), when
    given, reads the process's pipes meanwhile. Returns the exit code."""
    for grace in (first, last):
        if proc.poll() is not None:
            break
        proc.terminate()
        deadline = time.monotonic() + grace
        while proc.poll() is None and (left := deadline - time.monotonic()) > 0:
            if pump:
                pump(min(left, 0.1))
                continue
            try:
                proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    return proc.returncode


@pytest.fixture
def tycho():
    return run
