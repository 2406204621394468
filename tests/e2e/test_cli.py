"""The command line as a user meets it: exit codes, stderr, arg."""


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
