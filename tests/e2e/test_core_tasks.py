"""Tasks seen from outside: a failing task is logged on stderr with its
name (file:line of its function) and a traceback, and the others go on."""

ISOLATION = """\
local function explode()
  error("task blew up")
end
tycho.spawn(explode)
tycho.set_timeout(1, function() local t = nil; return t.x end)
tycho.uv.new_timer():start(1, 0, function() error("raw callback broke") end)
local good = tycho.spawn(function() tycho.sleep(0.02) return "good" end)
print(good:join())
"""


def test_a_failing_task_is_logged_and_the_others_finish(tycho, tmp_path):
    (tmp_path / "iso.lua").write_text(ISOLATION)
    r = tycho("iso.lua", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "good\n"
    assert ("tycho: task 'iso.lua:1' failed: iso.lua:2: task blew up\n"
            "stack traceback:\n") in r.stderr
    assert "iso.lua:2: in function <iso.lua:1>" in r.stderr
    assert ("tycho: task 'iso.lua:5' failed: iso.lua:5: "
            "attempt to index a nil value (local 't')") in r.stderr
    assert "tycho: callback failed: iso.lua:6: raw callback broke" in r.stderr
    assert r.stderr.count("stack traceback:") == 3


def test_an_interval_goes_on_after_its_function_fails(tycho):
    r = tycho("-e", "local n = 0 tycho.set_interval(1, function(t) n = n + 1"
                    " if n == 3 then t:stop() print('ticked', n) end error('tick ' .. n) end)")
    assert r.returncode == 0
    assert r.stdout == "ticked\t3\n"
    for n in (1, 2, 3):
        assert f"(command line):1: tick {n}" in r.stderr


def test_a_joined_failure_is_not_logged_twice(tycho):
    r = tycho("-e", "local h = tycho.spawn(function() error('once', 0) end)"
                    " print(pcall(h.join, h))")
    assert r.returncode == 0
    assert r.stdout.startswith("false\tonce")
    assert r.stderr == ""


def test_an_error_in_the_main_script_while_tasks_wait_exits_1(tycho):
    r = tycho("-e", "tycho.spawn(function() tycho.sleep(3600) end) tycho.sleep(0.001)"
                    " error('main failed')", timeout=10)
    assert r.returncode == 1
    assert "tycho: (command line):1: main failed" in r.stderr


def test_awaiting_outside_a_task_says_so(tycho):
    r = tycho("-e", "coroutine.wrap(function() tycho.sleep(0.01) end)()")
    assert r.returncode == 1
    assert "must be called inside a task (use tycho.spawn)" in r.stderr


def test_cancelling_a_sleeper_lets_the_process_end_at_once(tycho):
    r = tycho("-e", "local h = tycho.spawn(function() tycho.sleep(3600) end)"
                    " tycho.sleep(0.001) h:cancel() print(h:status())", timeout=10)
    assert r.returncode == 0
    assert r.stdout == "cancelled\n"
