"""The command line as a user meets it: exit codes, stderr, arg."""
import os

from conftest import TYCHO


def test_version(tycho):
    r = tycho("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("Tycho ")
    assert "Lua 5.4" in r.stdout and "libuv" in r.stdout


def test_bad_flag_exits_2(tycho):
    r = tycho("--no-such-flag")
    assert r.returncode == 2
    assert "unknown option '--no-such-flag'" in r.stderr


def test_missing_script_exits_2(tycho, tmp_path):
    r = tycho(str(tmp_path / "nope.lua"))
    assert r.returncode == 2
    assert "cannot open" in r.stderr


def test_script_args_like_lua(tycho, tmp_path):
    script = tmp_path / "args.lua"
    script.write_text("print(arg[0], arg[1], arg[2], select('#', ...))\n")
    r = tycho(str(script), "a", "b")
    assert r.returncode == 0
    assert r.stdout == f"{script}\ta\tb\t2\n"


def test_uncaught_error_traceback_exit_1(tycho, tmp_path):
    script = tmp_path / "boom.lua"
    script.write_text("local function f()\n  error('kaboom')\nend\nf()\n")
    r = tycho(str(script))
    assert r.returncode == 1
    assert "boom.lua:2: kaboom" in r.stderr
    assert "stack traceback" in r.stderr


def test_sleep_at_top_level(tycho):
    r = tycho("-e", "tycho.sleep(0.01) print('slept')")
    assert r.returncode == 0 and r.stdout == "slept\n"


def test_help_exits_0(tycho):
    for flag in ("-h", "--help"):
        r = tycho(flag)
        assert r.returncode == 0
        assert r.stdout.startswith("usage: tycho")
        assert "-e CODE" in r.stdout and r.stderr == ""


def test_short_version_flag(tycho):
    r = tycho("-v")
    assert r.returncode == 0
    assert r.stdout.startswith("Tycho 0.")


def test_e_runs_code_in_a_task(tycho):
    r = tycho("-e", "tycho.sleep(0.001) io.write(select('#', ...), ' ', type(arg))")
    assert r.returncode == 0
    assert r.stdout == "0 table"


def test_several_e_run_in_order(tycho):
    r = tycho("-e", "io.write('one ')", "-e", "io.write('two')")
    assert r.returncode == 0 and r.stdout == "one two"


def test_e_without_code_exits_2(tycho):
    r = tycho("-e")
    assert r.returncode == 2
    assert "'-e' needs an argument" in r.stderr
    assert r.stdout == ""


def test_e_error_traceback_exit_1(tycho):
    r = tycho("-e", "error('bad thing')")
    assert r.returncode == 1
    assert r.stderr.startswith("tycho: (command line):1: bad thing\nstack traceback:")


def test_syntax_error_exits_1_without_traceback(tycho, tmp_path):
    script = tmp_path / "syn.lua"
    script.write_text("local x =\n")
    r = tycho("syn.lua", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr == "tycho: syn.lua:2: unexpected symbol near <eof>\n"


def test_error_with_a_table_value(tycho):
    r = tycho("-e", "error({})")
    assert r.returncode == 1
    assert "(error object is a table value)" in r.stderr


def test_script_from_stdin_with_dash(tycho):
    r = tycho("-", "x", "y", input="print(arg[0], arg[1], ...)\n")
    assert r.returncode == 0
    assert r.stdout == "-\tx\tx\ty\n"


def test_script_from_piped_stdin_without_arguments(tycho):
    r = tycho(input="tycho.sleep(0.001) print('from stdin')\n")
    assert r.returncode == 0 and r.stdout == "from stdin\n"


def test_arg_negative_indices_hold_the_interpreter(tycho, tmp_path):
    script = tmp_path / "a.lua"
    script.write_text("print(arg[-1] == os.getenv('TYCHO_BIN'), #arg)\n")
    r = tycho(str(script), "1", "2", "3", env={**os.environ, "TYCHO_BIN": TYCHO})
    assert r.returncode == 0
    assert r.stdout == "true\t3\n"


def test_os_exit_codes(tycho):
    assert tycho("-e", "os.exit(3)").returncode == 3
    assert tycho("-e", "os.exit(true)").returncode == 0
    assert tycho("-e", "os.exit(false)").returncode == 1
    assert tycho("-e", "os.exit()").returncode == 0


def test_os_exit_stops_at_once_and_quietly(tycho):
    r = tycho("-e", "tycho.set_interval(1, function() end) io.write('a') os.exit(7) io.write('b')")
    assert (r.returncode, r.stdout, r.stderr) == (7, "a", "")


def test_os_exit_from_a_spawned_task(tycho):
    r = tycho("-e", "tycho.spawn(function() tycho.sleep(0.005) os.exit(4) end)"
                    " tycho.sleep(30) print('not reached')")
    assert (r.returncode, r.stdout, r.stderr) == (4, "", "")


def test_pending_timers_keep_the_process_alive(tycho):
    r = tycho("-e", "tycho.set_timeout(50, function() tycho.sleep(0.01) print('fired') end)"
                    " print('main done')")
    assert r.returncode == 0
    assert r.stdout == "main done\nfired\n"


def test_an_unref_timer_does_not_keep_it_alive(tycho):
    r = tycho("-e", "tycho.set_timeout(20000, function() print('fired') end):unref()"
                    " print('main done')", timeout=10)
    assert r.returncode == 0
    assert r.stdout == "main done\n"


def test_an_interval_runs_until_stopped_then_the_process_ends(tycho):
    r = tycho("-e", "local n = 0 tycho.set_interval(2, function(t) n = n + 1"
                    " print(n) if n == 3 then t:stop() end end)")
    assert r.returncode == 0
    assert r.stdout == "1\n2\n3\n"
