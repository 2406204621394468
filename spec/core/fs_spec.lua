-- Specs for tycho.fs (lua/tycho/fs.lua): real files in a fresh temporary
-- directory per test, real permission errors (the specs run as root, so
-- those come from the kernel's own refusals: a read-only sysctl and an
-- immutable file), and tasks cancelled while the thread pool works.
local tycho = require "tycho"
local fs = tycho.fs
local uv = tycho.uv

local dir

local function path(name) return dir .. "/" .. name end

local function sh(cmd)
  local ok = os.execute(cmd)
  assert(ok, "command failed: " .. cmd)
end

-- Bounded wait for a condition, giving the loop a turn each time.
local function wait_for(pred, what)
  for _ = 1, 2000 do
    if pred() then return end
    tycho.sleep(0.001)
  end
  error("timed out waiting for " .. what, 2)
end

-- How many of the process's fds are open on `target` (a file or a FIFO).
local function fds_on(target)
  local n = 0
  local req = assert(uv.fs_scandir("/proc/self/fd"))
  for fd in uv.fs_scandir_next, req do
    if uv.fs_readlink("/proc/self/fd/" .. fd) == target then n = n + 1 end
  end
  return n
end

before_each(function()
  dir = assert(uv.fs_mkdtemp("/tmp/tycho-fs-spec-XXXXXX"))
end)

after_each(function()
  sh("chattr -R -i '" .. dir .. "' 2>/dev/null; rm -rf '" .. dir .. "'")
end)

describe("tycho.fs.read_file", function()
  it("reads a whole file, binary and larger than one chunk", function()
    local data = ("\0\1\2tycho\255"):rep(40000) -- 360 kB, several reads
    local f = assert(io.open(path("big"), "wb"))
    f:write(data)
    f:close()
    assert.are.equal(data, fs.read_file(path("big")))
  end)

  it("reads an empty file as an empty string", function()
    assert(io.open(path("empty"), "w")):close()
    assert.are.equal("", fs.read_file(path("empty")))
  end)

  it("returns nil, message, code for a missing file", function()
    local data, err, code = fs.read_file(path("missing"))
    assert.is_nil(data)
    assert.are.equal("ENOENT", code)
    assert.matches("^ENOENT: no such file or directory", err)
    assert.matches(path("missing"), err, 1, true)
  end)

  it("returns EISDIR for a directory", function()
    local data, _, code = fs.read_file(dir)
    assert.is_nil(data)
    assert.are.equal("EISDIR", code)
  end)

  it("names its bad argument", function()
    assert.has_error(function() fs.read_file() end,
      "bad argument #1 to 'read_file' (string expected, got nil)")
    assert.has_error(function() fs.read_file(42) end,
      "bad argument #1 to 'read_file' (string expected, got number)")
  end)

  it("raises a clear error outside a task", function()
    local ok, err = coroutine.wrap(function() return pcall(fs.read_file, "/etc/hostname") end)()
    assert.is_false(ok)
    assert.matches("must be called inside a task", err)
  end)
end)

describe("tycho.fs.write_file", function()
  it("creates and replaces a file", function()
    assert.is_true(fs.write_file(path("a"), "first version"))
    assert.are.equal("first version", fs.read_file(path("a")))
    assert.is_true(fs.write_file(path("a"), "second"))
    assert.are.equal("second", fs.read_file(path("a")))
  end)

  it("appends with {append = true}", function()
    assert.is_true(fs.write_file(path("log"), "one\n"))
    assert.is_true(fs.write_file(path("log"), "two\n", { append = true }))
    assert.are.equal("one\ntwo\n", fs.read_file(path("log")))
  end)

  it("creates the file with the given mode", function()
    assert.is_true(fs.write_file(path("secret"), "x", { mode = tonumber("600", 8) }))
    local st = fs.stat(path("secret"))
    assert.are.equal(tonumber("600", 8), st.mode & tonumber("777", 8))
  end)

  it("with {atomic = true} replaces the file and leaves no temporary behind", function()
    assert.is_true(fs.write_file(path("conf"), "old"))
    assert.is_true(fs.write_file(path("conf"), "new", { atomic = true }))
    assert.are.equal("new", fs.read_file(path("conf")))
    assert.are.same({ "conf" }, fs.readdir(dir))
  end)

  it("with {atomic = true} never shows readers a partial file", function()
    local old, new = ("a"):rep(1 << 20), ("b"):rep(1 << 20)
    assert.is_true(fs.write_file(path("doc"), old))
    local done, reads, bad = false, 0, 0
    local readers = {}
    for i = 1, 4 do
      readers[i] = tycho.spawn(function()
        repeat
          local got = fs.read_file(path("doc"))
          reads = reads + 1
          if got ~= old and got ~= new then bad = bad + 1 end
        until done
      end)
    end
    for _ = 1, 5 do
      assert.is_true(fs.write_file(path("doc"), new, { atomic = true }))
      assert.is_true(fs.write_file(path("doc"), old, { atomic = true }))
    end
    done = true
    for i = 1, 4 do readers[i]:join() end
    assert.is_true(reads > 4, "readers ran " .. reads .. " times")
    assert.are.equal(0, bad)
  end)

  it("with {atomic = true} removes its temporary when the rename fails", function()
    assert.is_true(fs.mkdir(path("target")))
    assert.is_true(fs.write_file(path("target/inside"), "x"))
    local ok, err, code = fs.write_file(path("target"), "data", { atomic = true })
    assert.is_nil(ok)
    assert.are.equal("string", type(err))
    assert.are.equal("EISDIR", code)
    assert.are.same({ "target" }, fs.readdir(dir))
  end)

  it("returns ENOENT when the directory does not exist", function()
    local ok, _, code = fs.write_file(path("no/such/file"), "x")
    assert.is_nil(ok)
    assert.are.equal("ENOENT", code)
    ok, _, code = fs.write_file(path("no/such/file"), "x", { atomic = true })
    assert.is_nil(ok)
    assert.are.equal("ENOENT", code)
  end)

  it("names its bad arguments", function()
    assert.has_error(function() fs.write_file(nil, "x") end,
      "bad argument #1 to 'write_file' (string expected, got nil)")
    assert.has_error(function() fs.write_file(path("x"), 12) end,
      "bad argument #2 to 'write_file' (string expected, got number)")
    assert.has_error(function() fs.write_file(path("x"), "x", "atomic") end,
      "bad argument #3 to 'write_file' (table expected, got string)")
  end)
end)

describe("permission errors", function()
  -- Root passes file mode checks, but a read-only sysctl refuses writes to
  -- everyone (the kernel checks the sysctl's own mode) with EACCES.
  it("EACCES from a read-only sysctl", function()
    local sysctl = "/proc/sys/fs/dentry-state"
    local ok, err, code = fs.write_file(sysctl, "1")
    assert.is_nil(ok)
    assert.are.equal("EACCES", code)
    assert.matches("^EACCES: permission denied", err)
    local file
    file, err, code = fs.open(sysctl, "w")
    assert.is_nil(file)
    assert.are.equal("EACCES", code)
    assert.is_string(fs.read_file(sysctl)) -- reading it is allowed
  end)

  -- An immutable file (chattr +i) cannot be changed, removed or renamed
  -- even by root: EPERM.
  it("EPERM from an immutable file", function()
    assert.is_true(fs.write_file(path("frozen"), "ice"))
    sh("chattr +i '" .. path("frozen") .. "'")
    local ok, err, code = fs.write_file(path("frozen"), "melt")
    assert.is_nil(ok)
    assert.are.equal("EPERM", code)
    assert.matches("^EPERM: operation not permitted", err)
    ok, _, code = fs.unlink(path("frozen"))
    assert.is_nil(ok)
    assert.are.equal("EPERM", code)
    ok, _, code = fs.rename(path("frozen"), path("thawed"))
    assert.is_nil(ok)
    assert.are.equal("EPERM", code)
    assert.are.equal("ice", fs.read_file(path("frozen")))
  end)
end)

describe("tycho.fs.stat and lstat", function()
  it("describe files and directories", function()
    assert.is_true(fs.write_file(path("f"), "12345"))
    local st = fs.stat(path("f"))
    assert.are.equal("file", st.type)
    assert.are.equal(5, st.size)
    assert.is_number(st.mtime.sec)
    assert.are.equal("directory", fs.stat(dir).type)
  end)

  it("lstat sees a symbolic link where stat follows it", function()
    assert.is_true(fs.write_file(path("real"), "x"))
    assert(uv.fs_symlink(path("real"), path("link")))
    assert.are.equal("file", fs.stat(path("link")).type)
    assert.are.equal("link", fs.lstat(path("link")).type)
  end)

  it("return nil, message, code for a missing path", function()
    for _, f in ipairs({ fs.stat, fs.lstat }) do
      local st, err, code = f(path("missing"))
      assert.is_nil(st)
      assert.are.equal("ENOENT", code)
      assert.matches("^ENOENT", err)
    end
  end)

  it("name their bad argument", function()
    assert.has_error(function() fs.stat({}) end,
      "bad argument #1 to 'stat' (string expected, got table)")
    assert.has_error(function() fs.lstat() end,
      "bad argument #1 to 'lstat' (string expected, got nil)")
  end)
end)

describe("tycho.fs.readdir", function()
  it("lists names sorted, or names with types", function()
    assert.is_true(fs.write_file(path("b"), ""))
    assert.is_true(fs.write_file(path("a"), ""))
    assert.is_true(fs.mkdir(path("c")))
    assert.are.same({ "a", "b", "c" }, fs.readdir(dir))
    assert.are.same({
      { name = "a", type = "file" },
      { name = "b", type = "file" },
      { name = "c", type = "directory" },
    }, fs.readdir(dir, { types = true }))
    assert.are.same({}, fs.readdir(path("c")))
  end)

  it("returns ENOENT and ENOTDIR", function()
    local list, _, code = fs.readdir(path("missing"))
    assert.is_nil(list)
    assert.are.equal("ENOENT", code)
    assert.is_true(fs.write_file(path("file"), ""))
    list, _, code = fs.readdir(path("file"))
    assert.is_nil(list)
    assert.are.equal("ENOTDIR", code)
  end)

  it("names its bad arguments", function()
    assert.has_error(function() fs.readdir(1) end,
      "bad argument #1 to 'readdir' (string expected, got number)")
    assert.has_error(function() fs.readdir(dir, true) end,
      "bad argument #2 to 'readdir' (table expected, got boolean)")
  end)
end)

describe("tycho.fs.mkdir and rmdir", function()
  it("create and remove a directory", function()
    assert.is_true(fs.mkdir(path("d")))
    assert.are.equal("directory", fs.stat(path("d")).type)
    assert.is_true(fs.rmdir(path("d")))
    assert.is_nil(fs.stat(path("d")))
  end)

  it("mkdir applies the mode option", function()
    assert.is_true(fs.mkdir(path("private"), { mode = tonumber("700", 8) }))
    assert.are.equal(tonumber("700", 8), fs.stat(path("private")).mode & tonumber("777", 8))
  end)

  it("mkdir fails with EEXIST and ENOENT without recursive", function()
    assert.is_true(fs.mkdir(path("d")))
    local ok, err, code = fs.mkdir(path("d"))
    assert.is_nil(ok)
    assert.are.equal("EEXIST", code)
    assert.matches("^EEXIST", err)
    ok, _, code = fs.mkdir(path("x/y"))
    assert.is_nil(ok)
    assert.are.equal("ENOENT", code)
  end)

  it("mkdir {recursive = true} creates parents and accepts an existing path", function()
    assert.is_true(fs.mkdir(path("a/b/c"), { recursive = true }))
    assert.are.equal("directory", fs.stat(path("a/b/c")).type)
    assert.is_true(fs.mkdir(path("a/b/c"), { recursive = true }))
    assert.is_true(fs.mkdir(path("a//b/d/"), { recursive = true }))
    assert.are.equal("directory", fs.stat(path("a/b/d")).type)
  end)

  it("mkdir {recursive = true} fails when a part is a file", function()
    assert.is_true(fs.write_file(path("file"), ""))
    local ok, _, code = fs.mkdir(path("file/sub"), { recursive = true })
    assert.is_nil(ok)
    assert.are.equal("EEXIST", code)
  end)

  it("rmdir fails with ENOTEMPTY, ENOENT and ENOTDIR", function()
    assert.is_true(fs.mkdir(path("full")))
    assert.is_true(fs.write_file(path("full/x"), ""))
    local ok, _, code = fs.rmdir(path("full"))
    assert.is_nil(ok)
    assert.are.equal("ENOTEMPTY", code)
    ok, _, code = fs.rmdir(path("missing"))
    assert.is_nil(ok)
    assert.are.equal("ENOENT", code)
    ok, _, code = fs.rmdir(path("full/x"))
    assert.is_nil(ok)
    assert.are.equal("ENOTDIR", code)
  end)

  it("name their bad arguments", function()
    assert.has_error(function() fs.mkdir() end,
      "bad argument #1 to 'mkdir' (string expected, got nil)")
    assert.has_error(function() fs.mkdir(path("d"), "recursive") end,
      "bad argument #2 to 'mkdir' (table expected, got string)")
    assert.has_error(function() fs.rmdir(false) end,
      "bad argument #1 to 'rmdir' (string expected, got boolean)")
  end)
end)

describe("tycho.fs.unlink and rename", function()
  it("unlink removes a file", function()
    assert.is_true(fs.write_file(path("f"), "x"))
    assert.is_true(fs.unlink(path("f")))
    assert.is_nil(fs.stat(path("f")))
  end)

  it("unlink fails with ENOENT and EISDIR", function()
    local ok, err, code = fs.unlink(path("missing"))
    assert.is_nil(ok)
    assert.are.equal("ENOENT", code)
    assert.matches("^ENOENT", err)
    ok, _, code = fs.unlink(dir)
    assert.is_nil(ok)
    assert.are.equal("EISDIR", code)
  end)

  it("rename moves a file and replaces the target", function()
    assert.is_true(fs.write_file(path("from"), "moved"))
    assert.is_true(fs.write_file(path("to"), "replaced"))
    assert.is_true(fs.rename(path("from"), path("to")))
    assert.are.equal("moved", fs.read_file(path("to")))
    assert.is_nil(fs.stat(path("from")))
  end)

  it("rename fails with ENOENT", function()
    local ok, _, code = fs.rename(path("missing"), path("other"))
    assert.is_nil(ok)
    assert.are.equal("ENOENT", code)
  end)

  it("name their bad arguments", function()
    assert.has_error(function() fs.unlink(3) end,
      "bad argument #1 to 'unlink' (string expected, got number)")
    assert.has_error(function() fs.rename(path("a")) end,
      "bad argument #2 to 'rename' (string expected, got nil)")
  end)
end)

describe("tycho.fs.open", function()
  it("writes, seeks and reads", function()
    local f = assert(fs.open(path("f"), "w+"))
    assert.are.equal(f, f:write("hello "))
    assert.are.equal(f, f:write("world"))
    assert.are.equal(0, f:seek("set"))
    assert.are.equal("hello", f:read(5))
    assert.are.equal(6, f:seek("cur", 1))
    assert.are.equal("world", f:read())
    assert.is_nil(f:read(1)) -- end of file
    assert.are.equal(8, f:seek("end", -3))
    assert.are.equal("rld", f:read(10))
    assert.is_true(f:close())
    assert.are.equal("hello world", fs.read_file(path("f")))
  end)

  it("defaults to read mode and reads the rest with read()", function()
    local data = ("0123456789"):rep(20000)
    assert.is_true(fs.write_file(path("f"), data))
    local f = assert(fs.open(path("f")))
    assert.are.equal("0123", f:read(4))
    assert.are.equal(data:sub(5), f:read())
    assert.is_nil(f:read())
    f:close()
  end)

  it("appends in 'a' mode and updates in 'r+' mode", function()
    assert.is_true(fs.write_file(path("f"), "abc"))
    local f = assert(fs.open(path("f"), "a"))
    f:write("def")
    f:close()
    assert.are.equal("abcdef", fs.read_file(path("f")))
    f = assert(fs.open(path("f"), "r+"))
    f:seek("set", 1)
    f:write("XY")
    f:close()
    assert.are.equal("aXYdef", fs.read_file(path("f")))
  end)

  it("'wx' refuses an existing file", function()
    assert.is_true(fs.write_file(path("f"), ""))
    local f, err, code = fs.open(path("f"), "wx")
    assert.is_nil(f)
    assert.are.equal("EEXIST", code)
    assert.matches("^EEXIST", err)
    f = assert(fs.open(path("new"), "wx"))
    f:close()
  end)

  it("returns nil, message, code for a missing file", function()
    local f, err, code = fs.open(path("missing"))
    assert.is_nil(f)
    assert.are.equal("ENOENT", code)
    assert.matches("^ENOENT", err)
  end)

  it("closes once, and a closed file refuses work", function()
    local f = assert(fs.open(path("f"), "w"))
    assert.matches("^file %(%d+%)$", tostring(f))
    assert.is_true(f:close())
    assert.is_true(f:close())
    assert.are.equal("file (closed)", tostring(f))
    assert.has_error(function() f:read(1) end, "bad argument #1 to 'read' (file is closed)")
    assert.has_error(function() f:write("x") end, "bad argument #1 to 'write' (file is closed)")
    assert.has_error(function() f:seek("set") end, "bad argument #1 to 'seek' (file is closed)")
  end)

  it("closes a to-be-closed file at the end of its scope", function()
    do
      local f <close> = assert(fs.open(path("f"), "w"))
      f:write("x")
      assert.are.equal(1, fds_on(path("f")))
    end
    wait_for(function() return fds_on(path("f")) == 0 end, "the fd to close")
  end)

  it("names its bad arguments", function()
    assert.has_error(function() fs.open() end,
      "bad argument #1 to 'open' (string expected, got nil)")
    assert.has_error(function() fs.open(path("f"), 1) end,
      "bad argument #2 to 'open' (string expected, got number)")
    assert.has_error(function() fs.open(path("f"), "q") end,
      "bad argument #2 to 'open' (invalid mode 'q')")
    local f = assert(fs.open(path("f"), "w"))
    assert.has_error(function() f:write(1) end,
      "bad argument #1 to 'write' (string expected, got number)")
    assert.has_error(function() f:read("all") end,
      "bad argument #1 to 'read' (number expected, got string)")
    assert.has_error(function() f:seek("middle") end,
      "bad argument #1 to 'seek' (invalid option 'middle')")
    f:close()
  end)
end)

describe("tycho.fs and the loop", function()
  it("100 tasks sleeping and reading files finish in about the time of one", function()
    for i = 1, 100 do assert.is_true(fs.write_file(path("f" .. i), "data " .. i)) end
    local t0 = tycho.hrtime()
    local tasks = {}
    for i = 1, 100 do
      tasks[i] = tycho.spawn(function()
        tycho.sleep(0.1)
        return fs.read_file(path("f" .. i))
      end)
    end
    for i = 1, 100 do assert.are.equal("data " .. i, tasks[i]:join()) end
    local ms = (tycho.hrtime() - t0) / 1e6
    -- one task takes 100 ms; a hundred in a row would take 10 s
    assert.is_true(ms >= 99 and ms < 1000, "took " .. ms .. " ms")
  end)

  -- Opening a FIFO for reading blocks until a writer comes: it blocks a
  -- thread of the pool, never the loop.
  it("keeps the loop running while an operation blocks", function()
    local fifo = path("fifo")
    sh("mkfifo '" .. fifo .. "'")
    local reader = tycho.spawn(function()
      local f = assert(fs.open(fifo, "r"))
      local data = f:read()
      f:close()
      return data
    end)
    local t0 = tycho.hrtime()
    tycho.sleep(0.02)
    assert.is_true((tycho.hrtime() - t0) / 1e6 < 1000)
    assert.are.equal("waiting", reader:status())
    local w = assert(fs.open(fifo, "w"))
    w:write("through the pipe")
    w:close()
    assert.are.equal("through the pipe", reader:join())
  end)
end)

describe("cancelling a task that awaits fs", function()
  it("never resumes it, and closes the fd it opened for nobody", function()
    local fifo = path("fifo")
    sh("mkfifo '" .. fifo .. "'")
    local resumed = false
    local t = tycho.spawn(function()
      fs.open(fifo, "r") -- blocks in the pool until a writer opens
      resumed = true
    end)
    wait_for(function() return t:status() == "waiting" end, "the task to park")
    t:cancel()
    assert.are.equal("cancelled", t:status())
    -- Let the open complete: it hands an fd to a task that is gone.
    local w = assert(fs.open(fifo, "w"))
    w:close()
    wait_for(function() return fds_on(fifo) == 0 end, "the orphan fd to close")
    assert.is_false(resumed)
    assert.has_error(function() t:join() end, "task was cancelled")
  end)

  it("removes an atomic write's temporary and keeps the old file", function()
    assert.is_true(fs.write_file(path("conf"), "old"))
    -- Hold the fsync's completion (the real fsync runs) so the cancel
    -- lands while write_file waits for it.
    local real_fsync, held = uv.fs_fsync, nil
    uv.fs_fsync = function(fd, cb)
      return real_fsync(fd, function(...) held = { cb, ... } end)
    end
    local resumed = false
    local t = tycho.spawn(function()
      fs.write_file(path("conf"), "new", { atomic = true })
      resumed = true
    end)
    local ok, err = pcall(function()
      wait_for(function() return held end, "the fsync")
      assert.are.equal(2, #fs.readdir(dir)) -- conf and the temporary
      t:cancel()
    end)
    uv.fs_fsync = real_fsync
    if held then held[1](table.unpack(held, 2)) end -- a late, dropped result
    assert(ok, err)
    wait_for(function() return #fs.readdir(dir) == 1 end, "the temporary to go")
    assert.are.same({ "conf" }, fs.readdir(dir))
    assert.are.equal("old", fs.read_file(path("conf")))
    assert.is_false(resumed)
    assert.are.equal("cancelled", t:status())
  end)

  it("closes read_file's fd when cancelled in the middle of reading", function()
    local fifo = path("fifo")
    sh("mkfifo '" .. fifo .. "'")
    -- Count the reads read_file starts (it looks up uv.fs_read per call).
    local real_read, reads = uv.fs_read, 0
    uv.fs_read = function(...)
      reads = reads + 1
      return real_read(...)
    end
    local resumed = false
    local t = tycho.spawn(function()
      fs.read_file(fifo) -- opens, then reads until EOF
      resumed = true
    end)
    local w = assert(fs.open(fifo, "w")) -- completes once read_file opened
    local ok, err = pcall(function()
      w:write("part")
      -- The first read returns "part"; the second blocks for more.
      wait_for(function() return reads == 2 end, "read_file's second read")
      t:cancel()
      assert.are.equal("cancelled", t:status())
      wait_for(function() return fds_on(fifo) == 1 end, "read_file's fd to close")
    end)
    uv.fs_read = real_read
    w:close() -- EOF for the pending read (its result is dropped)
    assert(ok, err)
    assert.is_false(resumed)
    assert.are.equal(2, reads)
  end)
end)
