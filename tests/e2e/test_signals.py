"""SIGINT, SIGTERM and SIGHUP sent to a running script, as a user (Ctrl-C)
or a service manager would. Each script prints "ready" once it holds its
handles; the test sends the signal only after reading that line.

Runs with the binary under test, and also with the ASan+UBSan build when
one is there (TYCHO_ASAN, or build-asan/tycho), where a clean exit also
means no leak or sanitizer report."""
import os
import signal
import subprocess

import pytest

from conftest import ROOT, TYCHO

BINARIES = [TYCHO]
_asan = os.environ.get("TYCHO_ASAN", os.path.join(ROOT, "build-asan", "tycho"))
if os.path.exists(_asan) and os.path.realpath(_asan) != os.path.realpath(TYCHO):
    BINARIES.append(_asan)

# Holds a bit of everything at once: a sleeping main task, a sleeping
# spawned task, an interval, a listening TCP socket and an open file.
BUSY = r"""
local uv = tycho.uv
tycho.spawn(function() tycho.sleep(3600) end)
tycho.set_interval(5, function() end)
local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))
assert(server:listen(16, function() end))
local f = assert(tycho.fs.open("/dev/null", "w"))
f:write("x")
print("ready")
io.stdout:flush()
tycho.sleep(3600)
print("not reached")
"""


def start(binary, code):
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    p = subprocess.Popen([binary, "-e", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()
    assert line == "ready\n", (line, p.stderr.read() if p.poll() is not None else "")
    return p


def finish(p):
    try:
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    return p.returncode, out, err


@pytest.mark.parametrize("binary", BINARIES)
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_ends_a_busy_script_cleanly(binary, sig, code):
    p = start(binary, BUSY)
    p.send_signal(sig)
    rc, out, err = finish(p)
    assert rc == code, err
    assert out == ""
    assert err == ""


@pytest.mark.parametrize("binary", BINARIES)
def test_sighup_is_ignored_without_a_taker(binary):
    p = start(binary, BUSY)
    p.send_signal(signal.SIGHUP)
    # Had SIGHUP ended it, the status would say "killed by SIGHUP" (-1);
    # signals of different numbers are delivered one by one, in order.
    p.send_signal(signal.SIGTERM)
    rc, _, err = finish(p)
    assert rc == 143, err
    assert err == ""


TAKER = r"""
local signals = require "tycho.signals"
local got = {}
local ticker = tycho.set_interval(5, function() end)
local remove = signals.take(function(name)
  got[#got + 1] = name
  ticker:stop() -- a graceful stop: nothing left, the loop ends
  return true
end)
print("ready")
io.stdout:flush()
while ticker:is_active() do tycho.sleep(0.005) end
remove()
print("stopped by " .. table.concat(got, ","))
"""


@pytest.mark.parametrize("binary", BINARIES)
def test_a_taker_turns_sigterm_into_a_graceful_stop(binary):
    p = start(binary, TAKER)
    p.send_signal(signal.SIGTERM)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert out == "stopped by SIGTERM\n"
    assert err == ""


@pytest.mark.parametrize("binary", BINARIES)
def test_a_failing_taker_is_reported_and_the_signal_still_ends_it(binary):
    code = ('require("tycho.signals").take(function() error("taker broke") end) '
            'print("ready") io.stdout:flush() tycho.sleep(3600)')
    p = start(binary, code)
    p.send_signal(signal.SIGINT)
    rc, _, err = finish(p)
    assert rc == 130
    assert "tycho: signal handler failed:" in err
    assert "taker broke" in err
