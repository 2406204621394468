-- Specs for tycho.process (lua/tycho/process.lua): real child processes
-- (sh, cat, sleep) with piped stdin/stdout/stderr, exit codes, signals.
local tycho = require "tycho"
local support = require "spec.support.net"
local process = tycho.process

describe("process.spawn", function()
  it("pipes stdin to cat and reads its stdout", function()
    local p = assert(process.spawn("cat"))
    assert.is_true(p.pid > 0)
    assert(p.stdin:write("line one\nline two\n"))
    assert(p.stdin:shutdown())
    p.stdin:close()
    assert.are.equal("line one", p.stdout:read_line())
    assert.are.equal("line two", p.stdout:read_line())
    assert.is_nil(p.stdout:read_line())
    local code, sig = p:wait()
    assert.are.equal(0, code)
    assert.is_nil(sig)
    p:close()
  end)

  it("reports exit codes and keeps stdout and stderr apart", function()
    local p = assert(process.spawn("sh", { "-c", "echo to-out; echo to-err >&2; exit 7" },
      { stdin = "ignore" }))
    assert.is_nil(p.stdin)
    assert.are.equal("to-out", p.stdout:read_line())
    assert.are.equal("to-err", p.stderr:read_line())
    assert.are.equal(7, p:wait())
    assert.are.equal(7, p:wait()) -- waiting again returns at once
    assert.is_false(p:is_running())
    p:close()
  end)

  it("kills a process and reports the signal", function()
    local p = assert(process.spawn("sleep", { "30" }, { stdin = "ignore", stdout = "ignore", stderr = "ignore" }))
    assert.is_true(p:is_running())
    assert.is_true(p:kill("SIGKILL"))
    local code, sig = p:wait()
    assert.are.equal(128 + 9, code)
    assert.are.equal("SIGKILL", sig)
    local ok, err, ecode = p:kill()
    assert.is_nil(ok)
    assert.are.equal("ESRCH", ecode)
    assert.is_string(err)
  end)

  it("reports a signal the child sends itself", function()
    local p = assert(process.spawn("sh", { "-c", "kill -TERM $$" }, { stdin = "ignore" }))
    local code, sig = p:wait()
    assert.are.equal(143, code)
    assert.are.equal("SIGTERM", sig)
    p:close()
  end)

  it("times out a wait on a running child", function()
    local p = assert(process.spawn("sleep", { "30" }, { stdin = "ignore", stdout = "ignore" }))
    local code, err, ecode = p:wait(0.02)
    assert.is_nil(code)
    assert.are.equal("ETIMEDOUT", ecode)
    assert.matches("still running", err)
    p:kill("KILL")
    assert.are.equal(137, p:wait())
    p:close()
  end)

  it("passes env and cwd", function()
    local dir = support.tmpdir("proc")
    local p = assert(process.spawn("sh", { "-c", "echo $GREETING; pwd" },
      { env = { GREETING = "hi there", PATH = "/usr/bin:/bin" }, cwd = dir, stdin = "ignore" }))
    assert.are.equal("hi there", p.stdout:read_line())
    assert.are.equal(dir, p.stdout:read_line())
    assert.are.equal(0, p:wait())
    p:close()
    support.rmdir(dir)
  end)

  it("returns nil, message, code for a missing program", function()
    local before = support.open_fds()
    local p, err, code = process.spawn("/nonexistent/program")
    assert.is_nil(p)
    assert.are.equal("ENOENT", code)
    assert.matches("spawning /nonexistent/program", err)
    support.wait_for(function() return support.open_fds() == before end, "the pipes to close")
  end)

  it("names bad arguments", function()
    assert.has_error(function() process.spawn(42) end,
      "bad argument #1 to 'spawn' (string expected, got number)")
    assert.has_error(function() process.spawn("sh", { {} }) end,
      "bad argument #2 to 'spawn' (argument 1 is a table, string expected)")
    assert.has_error(function() process.spawn("sh", {}, { stdout = "file" }) end,
      "bad argument #3 to 'spawn' (stdout must be 'pipe', 'inherit' or 'ignore')")
    assert.has_error(function() process.exec("sh", {}, { input = 1 }) end,
      "bad argument #3 to 'exec' (string expected, got number)")
  end)
end)

describe("process.exec", function()
  it("returns stdout, stderr and the exit code", function()
    local out, err, code = process.exec("sh", { "-c", "printf out; printf err >&2; exit 3" })
    assert.are.equal("out", out)
    assert.are.equal("err", err)
    assert.are.equal(3, code)
  end)

  it("feeds input and reads a large output without deadlock", function()
    local input = ("x"):rep(1024 * 1024)
    local out, _, code = process.exec("cat", {}, { input = input })
    assert.are.equal(0, code)
    assert.are.equal(#input, #out)
  end)

  it("copes with a child that exits without reading its input", function()
    local big = ("i"):rep(1024 * 1024)
    for _ = 1, 3 do
      local out, err, code = process.exec("sh", { "-c", "echo quick" }, { input = big })
      assert.are.equal("quick\n", out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
    end
  end)

  it("kills the child when the timeout passes", function()
    local t0 = tycho.hrtime()
    local _, _, code, sig = process.exec("sleep", { "30" }, { timeout = 0.05 })
    assert.are.equal(137, code)
    assert.are.equal("SIGKILL", sig)
    assert.is_true((tycho.hrtime() - t0) / 1e9 < 10)
  end)
end)

describe("this process", function()
  it("knows its pid, environment and working directory", function()
    assert.are.equal(tycho.uv.os_getpid(), process.pid)
    assert.is_true(math.type(process.pid) == "integer")
    process.env.TYCHO_SPEC_VAR = "42"
    assert.are.equal("42", process.env.TYCHO_SPEC_VAR)
    local seen
    for k, v in pairs(process.env) do if k == "TYCHO_SPEC_VAR" then seen = v end end
    assert.are.equal("42", seen)
    local out = process.exec("sh", { "-c", "printf %s \"$TYCHO_SPEC_VAR\"" })
    assert.are.equal("42", out)
    process.env.TYCHO_SPEC_VAR = nil
    assert.is_nil(process.env.TYCHO_SPEC_VAR)
    local here = process.cwd()
    local dir = support.tmpdir("cwd")
    assert.is_true(process.chdir(dir))
    assert.are.equal(dir, process.cwd())
    assert(process.chdir(here))
    local ok, err, code = process.chdir(dir .. "/missing")
    assert.is_nil(ok)
    assert.are.equal("ENOENT", code)
    assert.is_string(err)
    support.rmdir(dir)
  end)
end)
