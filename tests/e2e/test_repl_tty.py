"""The REPL on a real terminal: `tycho repl` and `tycho attach` run inside
tmux (a private tmux server per test), driven with send-keys and read back
with capture-pane. Every wait polls the screen against a deadline."""
import itertools
import os
import re
import shlex
import subprocess
import time

import pytest

from conftest import TYCHO
from test_repl_attach import get, start_app

_ids = itertools.count()
DEADLINE = 15.0


class Term:
    """One tmux pane running a command; the shell line after it prints
    "[exited N]" so tests can see the exit status."""

    def __init__(self, args, env=None, cwd=None, stty_dir=None):
        self.sock = f"tycho-test-{os.getpid()}-{next(_ids)}"
        envs = {k: v for k, v in os.environ.items()
                if k in ("TYCHO_LUA_DEV", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "PATH")}
        envs.update(env or {})
        assign = " ".join(f"{k}={shlex.quote(v)}" for k, v in envs.items())
        cmd = " ".join(shlex.quote(a) for a in args)
        shell = f"env -u NO_COLOR {assign} {cmd}; echo \"[exited $?]\"; sleep 600"
        if stty_dir:  # the terminal's modes before and after, to compare
            before, after = (shlex.quote(str(stty_dir / n)) for n in ("stty.before", "stty.after"))
            shell = (f"stty -g > {before}; env -u NO_COLOR {assign} {cmd}; "
                     f"echo \"[exited $?]\"; stty -g > {after}; sleep 600")
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "50",
                  "-s", "t", *(["-c", str(cwd)] if cwd else []), shell)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.sock, *args], check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def line(self, text):
        self.type(text)
        self.keys("Enter")

    def enter(self, text):
        """Types a line and waits until it has run: the screen ends with a
        prompt again after the echoed line (so later keys are not typed
        ahead while it runs)."""
        self.line(text)
        tail = re.escape(text) + r"(?:\n.*)*\n>>?\s*\Z"
        deadline = time.monotonic() + DEADLINE
        while not re.search(tail, self.screen().rstrip() + "\n"):
            if time.monotonic() > deadline:
                raise AssertionError(f"no prompt after {text!r}; screen:\n{self.screen()}")
            time.sleep(0.02)

    def screen(self, escapes=False):
        args = ["capture-pane", "-p", "-t", "t", "-S", "-1000"]
        if escapes:
            args.insert(1, "-e")
        return self.tmux(*args)

    def wait(self, pattern, timeout=DEADLINE, escapes=False):
        """Polls until the regex matches the screen; returns the match."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen(escapes)
            m = re.search(pattern, text, re.M)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r}; screen:\n{text}")
            time.sleep(0.02)

    def last_line(self):
        lines = [l for l in self.screen().split("\n") if l.strip()]
        return lines[-1] if lines else ""

    def close(self):
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def term(tmp_path):
    made = []

    def start(*args, env=None, home=None, stty=False):
        e = {"HOME": str(home or tmp_path)}
        e.update(env or {})
        t = Term([TYCHO, *args], env=e, cwd=tmp_path, stty_dir=tmp_path if stty else None)
        made.append(t)
        return t

    yield start
    for t in made:
        t.close()


def repl(term, **kw):
    t = term("repl", **kw)
    t.wait(r"^Tycho .* type \.help")
    t.wait(r"^>$")
    return t


def test_bare_tycho_on_a_terminal_opens_the_repl(term):
    t = term()
    t.wait(r"^Tycho .* type \.help")
    t.line("tycho.version")
    t.wait(r'^"\d+\.\d+\.\d+"\n>$')
    t.line(".exit")
    t.wait(r"^\[exited 0\]")


def test_prompt_result_and_continuation_prompt(term):
    t = repl(term)
    t.line("1 + 1")
    t.wait(r"^> 1 \+ 1\n2\n>$")
    t.line("function f()")
    t.wait(r"^>>$")
    t.line("  return 41 + 1")
    t.enter("end")
    t.line("f()")
    t.wait(r"^>> end\n> f\(\)\n42\n>$")


def test_history_recall_and_history_file(term, tmp_path):
    t = repl(term)
    t.line("40 + 2")
    t.wait(r"^42\n>$")
    t.keys("Up")
    t.wait(r"^42\n> 40 \+ 2$")
    t.keys("Enter")
    t.wait(r"^42\n> 40 \+ 2\n42\n>$")
    t.keys("C-d")
    t.wait(r"^\[exited 0\]")
    hist = (tmp_path / ".tycho_history").read_text()
    assert "40 + 2" in hist.replace("\\040", " ")
    # A new REPL recalls the line from the file.
    t2 = repl(term)
    t2.keys("Up")
    t2.wait(r"^> 40 \+ 2$")


def test_history_file_is_capped(term, tmp_path):
    entries = "".join(f"old{i}\n" for i in range(1500))
    (tmp_path / ".tycho_history").write_text("_HiStOrY_V2_\n" + entries)
    t = repl(term)
    t.line("'newest'")
    t.wait(r'^"newest"\n>$')
    t.keys("C-d")
    t.wait(r"^\[exited 0\]")
    lines = (tmp_path / ".tycho_history").read_text().splitlines()
    assert 900 <= len(lines) <= 1001
    assert lines[-1].replace("\\040", " ") == "'newest'"
    assert "old0" not in lines


def test_tab_completion(term):
    t = repl(term)
    t.type("tycho.sl")
    t.keys("Tab")
    t.wait(r"^> tycho\.sleep$")
    t.type("(0) return 'ok'")
    t.keys("Enter")
    t.wait(r'^"ok"\n>$')
    t.enter("config = {port = 1, ports = 2}")
    t.type("config.p")
    t.keys("Tab")
    t.wait(r"^> config\.port$")
    t.keys("Tab")  # ambiguous: the second Tab lists both
    t.wait(r"config\.port\s+config\.ports")
    t.keys("C-u")
    t.enter("s = 'x'")
    t.type("s:up")
    t.keys("Tab")
    t.wait(r"s:upper$")


def test_ctrl_c_cancels_a_sleeping_line(term):
    t = repl(term)
    t.line("print('started') tycho.sleep(100) print('finished')")
    t.wait(r"^started$")
    start = time.monotonic()
    t.keys("C-c")
    t.wait(r"^cancelled\n>$")
    assert time.monotonic() - start < 10
    t.line("1 + 1")
    t.wait(r"^2\n>$")
    assert not re.search(r"^finished$", t.screen(), re.M)


def test_ctrl_c_stops_inputs_that_never_yield(term):
    t = repl(term)
    for i in range(2):  # the second time proves the first left nothing behind
        t.line(f"print('spinning{i}') while true do end")
        t.wait(rf"^spinning{i}$")
        t.keys("C-c")
        t.wait(rf"^spinning{i}\ncancelled\n>$")
        t.enter(f"'back{i}'")
        t.wait(rf'^"back{i}"\n>$')


def test_ctrl_c_twice_at_an_empty_prompt_exits(term):
    t = repl(term)
    t.type("half typed")
    t.wait(r"^> half typed$")
    t.keys("C-c")
    t.wait(r"^> half typed\n>$")
    t.keys("C-c")
    t.wait(r"To exit, press Ctrl-C again")
    t.keys("C-c")
    t.wait(r"^\[exited 0\]")


def test_ctrl_d_exits_even_with_a_timer_pending(term):
    t = repl(term)
    t.line("tycho.set_interval(1000, function() end) return 'armed'")
    t.wait(r'^"armed"\n>$')
    t.keys("C-d")
    t.wait(r"^\[exited 0\]")


def test_type_ahead_waits_for_the_prompt_and_modes_are_restored(term, tmp_path):
    t = term("repl", stty=True)
    t.wait(r"^>$")
    t.line("print('started') tycho.sleep(0.5) return 'done'")
    t.wait(r"^started$")
    # Typed while the line runs: not echoed then, shown at the next prompt.
    t.type("1 + 1")
    t.wait(r'^started\n"done"\n> 1 \+ 1$')
    t.keys("Enter")
    t.wait(r"^2\n>$")
    t.keys("C-d")
    t.wait(r"^\[exited 0\]")
    deadline = time.monotonic() + DEADLINE
    while not (tmp_path / "stty.after").exists() or not (tmp_path / "stty.after").read_text():
        assert time.monotonic() < deadline, "the shell did not record the modes"
        time.sleep(0.02)
    assert (tmp_path / "stty.after").read_text() == (tmp_path / "stty.before").read_text()


def test_timer_prints_while_the_prompt_waits(term):
    t = repl(term)
    t.line("tycho.set_timeout(300, function() print('fired') end) return 'armed'")
    t.wait(r'^"armed"\n>$')
    t.type("partial")
    t.wait(r"^fired\n> partial$")
    t.type(" + 1")
    t.keys("C-a")
    t.type("local partial = 1 return ")
    t.keys("Enter")
    t.wait(r"^2\n>$")


def test_server_started_at_the_prompt_answers_curl(term):
    t = repl(term)
    t.enter("hits = 0")
    t.enter("srv = tycho.http.serve{port = 0, handler = function(req, res) "
            "hits = hits + 1 res:send('pong ' .. hits) end}")
    t.line("'port=' .. srv.port")
    port = int(t.wait(r'^"port=(\d+)"\n>$').group(1))
    # The prompt is waiting for input while curl talks to the server.
    r = subprocess.run(["curl", "-s", "--max-time", "10", f"http://127.0.0.1:{port}/"],
                       capture_output=True, text=True, timeout=20)
    assert r.stdout == "pong 1"
    assert t.last_line() == ">"
    t.line("hits")
    t.wait(r"^> hits\n1\n>$")


def test_colours_on_a_terminal_and_no_color(term, tmp_path):
    t = repl(term)
    t.line("{1, 's'}")
    t.wait(r'^\{ 1, "s" \}$')
    assert re.search(r"\x1b\[3\dm1\x1b\[(0|39)?m", t.screen(escapes=True))
    t2 = repl(term, env={"NO_COLOR": "1"})
    t2.line("{1, 's'}")
    t2.wait(r'^\{ 1, "s" \}$')
    result = [l for l in t2.screen(escapes=True).split("\n") if '"s"' in l and "{" in l]
    assert result and all("\x1b" not in l for l in result)


def test_errors_print_a_message_and_the_repl_goes_on(term):
    t = repl(term)
    t.line("error('kaboom')")
    t.wait(r"repl:1: kaboom\nstack traceback:")
    t.line("3 * 3")
    t.wait(r"^9\n>$")


def test_attach_on_a_terminal(term, tmp_path):
    proc, port, sock = start_app(tmp_path)
    try:
        assert get(port) == (200, "hello 1")
        t = term("attach", str(sock))
        t.wait(r"^attached to process \d+")
        t.wait(r"^>$")
        t.line("hits")
        t.wait(r"^> hits\n1\n>$")
        t.line("print('started') tycho.sleep(100)")
        t.wait(r"^started$")
        t.keys("C-c")
        t.wait(r"^cancelled\n>$")
        t.line("function double(x)")
        t.wait(r"^>>$")
        t.enter("return 2 * x end")
        t.line("double(hits)")
        t.wait(r"^2\n>$")
        t.keys("C-d")
        t.wait(r"^detached\n\[exited 0\]")
        assert get(port) == (200, "hello 2")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=20)
