"""`tycho repl` with stdin piped: line by line, same semantics as the
terminal REPL, no prompts and no colours, so it can be scripted."""
import os

from conftest import TYCHO, run


def repl(text, env=None, timeout=30):
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e["TERM"] = "xterm-256color"
    e.update(env or {})
    return run("repl", input=text, env=e, timeout=timeout)


def test_expressions_and_statements():
    r = repl("1 + 1\nx = 20\nx * 2\n'str'\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == '2\n40\n"str"\n'
    assert r.stderr == ""


def test_no_prompts_no_colours_even_with_a_colour_terminal_name():
    r = repl("{1, 'a', true}\n")
    assert r.stdout == '{ 1, "a", true }\n'
    assert "\x1b" not in r.stdout and ">" not in r.stdout


def test_several_results_are_tab_separated():
    r = repl("1, nil, 'x'\n")
    assert r.stdout == '1\tnil\t"x"\n'


def test_underscore_holds_the_last_result():
    r = repl("6 * 7\n_ + 1\n_\n")
    assert r.stdout == "42\n43\n43\n"


def test_multi_line_chunks():
    src = "function fib(n)\n  if n < 2 then return n end\n  return fib(n-1) + fib(n-2)\nend\nfib(20)\n" \
          "t = {\n  a = 1,\n}\nt.a\n"
    r = repl(src)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "6765\n1\n"


def test_errors_print_a_traceback_and_the_repl_goes_on():
    r = repl("local function f() error('kaboom') end f()\n1 + 1\n")
    assert r.returncode == 1
    assert r.stdout == "2\n"
    assert "repl:1: kaboom" in r.stderr
    assert "stack traceback:" in r.stderr
    assert "in local 'f'" in r.stderr or "in function 'f'" in r.stderr


def test_syntax_error_is_reported_at_once():
    r = repl("x = = 2\n3\n")
    assert r.returncode == 1
    assert "unexpected symbol near '='" in r.stderr
    assert r.stdout == "3\n"


def test_unfinished_chunk_at_end_of_input():
    r = repl("function f()\n")
    assert r.returncode == 1
    assert "unfinished chunk" in r.stderr


def test_awaiting_calls_run_in_order():
    r = repl("tycho.sleep(0.05) return 'first'\n'second'\n"
             "tycho.spawn(function() tycho.sleep(0.02) print('spawned') end) return 'third'\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == '"first"\n"second"\n"third"\nspawned\n'


def test_timers_keep_the_process_alive_after_end_of_input():
    r = repl("tycho.set_timeout(50, function() print('fired') end) return 'armed'\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[1:] == ["fired", ""]


def test_exit_command_stops_reading():
    r = repl("1\n.exit\n2\n")
    assert r.returncode == 0
    assert r.stdout == "1\n"


def test_load_runs_a_file_in_the_repl_environment(tmp_path):
    f = tmp_path / "lib.lua"
    f.write_text("greeting = 'hello'\nreturn #greeting\n")
    r = repl(f".load {f}\ngreeting\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == '5\n"hello"\n'


def test_help_lists_the_commands():
    r = repl(".help\n")
    assert ".load FILE" in r.stdout and ".exit" in r.stdout


def test_stdin_from_a_file(tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("2 ^ 10\n")
    with open(f) as stdin:
        import subprocess
        r = subprocess.run([TYCHO, "repl"], stdin=stdin, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1024.0\n"


def test_repl_rejects_arguments():
    r = run("repl", "extra")
    assert r.returncode == 2
    assert "unexpected argument" in r.stderr
