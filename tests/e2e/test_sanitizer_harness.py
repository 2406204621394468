"""The e2e suite's sanitizer check (conftest.py) can fail: an inner pytest
session with our conftest runs a small C program built with ASan+UBSan
(like build-asan/tycho) that leaks, or hits undefined behaviour, and the
tests during which it did so must fail with the report, the others pass."""
import os
import subprocess

from conftest import ROOT

pytest_plugins = ["pytester"]

# `bad leak` leaks 64 blocks of 48 bytes, `bad ub` overflows a signed int;
# `bad` is clean. LeakSanitizer is conservative: a stale copy of a pointer in
# a register can keep one block "reachable" (CI once saw a single leaked
# block go unreported), so the leak is many blocks, made in a function of
# its own.
BAD_C = r"""
#include <stdlib.h>
#include <string.h>
static void *keep;
__attribute__((noinline)) static void leak(void) {
  for (int i = 0; i < 64; i++) {
    keep = malloc(48);
    memset(keep, 1, 48);
  }
  keep = NULL;
}
int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "leak") == 0)
    leak();
  if (argc > 1 && strcmp(argv[1], "ub") == 0) {
    volatile int big = 0x7fffffff;
    return big + argc;
  }
  return 0;
}
"""

INNER = r"""
import subprocess
import pytest
from conftest import TYCHO, run


@pytest.fixture(scope="module")
def leaks_at_teardown():
    yield
    subprocess.run([TYCHO, "leak"])


def test_leak_in_a_child():
    subprocess.run([TYCHO, "leak"], capture_output=True)


def test_clean_child():
    assert subprocess.run([TYCHO]).returncode == 0


def test_ub_seen_by_run():
    run("ub")


def test_clean_with_module_fixture(leaks_at_teardown):
    run()
"""


def test_a_leak_or_ub_in_any_child_fails_the_test_it_ran_in(pytester, monkeypatch, tmp_path):
    src = tmp_path / "bad.c"
    src.write_text(BAD_C)
    binary = tmp_path / "bad"
    subprocess.run(["gcc", "-g", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=undefined", str(src), "-o", str(binary)],
                   check=True, timeout=120)
    with open(os.path.join(ROOT, "tests", "e2e", "conftest.py")) as f:
        pytester.makeconftest(f.read())
    pytester.makepyfile(test_inner=INNER)
    monkeypatch.setenv("TYCHO", str(binary))
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    out = r.stdout.str()
    r.assert_outcomes(passed=3, failed=1, errors=2)
    assert "ERROR test_inner.py::test_leak_in_a_child" in out
    assert "PASSED test_inner.py::test_clean_child" in out
    assert "FAILED test_inner.py::test_ub_seen_by_run" in out
    assert "runtime error: signed integer overflow" in out
    # The module's fixture ends after its last test: that test's teardown fails.
    assert "ERROR test_inner.py::test_clean_with_module_fixture" in out
    assert out.count("ERROR: LeakSanitizer: detected memory leaks") == 2
    assert "bad.c:" in out  # the report has the stack
