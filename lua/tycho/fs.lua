--- tycho.fs: files through libuv's thread pool. Every function yields the
--- calling task and never blocks the loop. Expected failures return
--- `nil, message, code` (like `io.open`); bad arguments raise.
local core = require "tycho.core"
local uv = require "luv"
local check = require "tycho.check"

local token, park, wake = core.token, core.park, core.wake
local pack, unpack = table.pack, table.unpack

local M = {}

local function fail(err)
  local code = tostring(err):match("^(%u[%u%d_]*):") or "EIO"
  return nil, err, code
end

-- Calls luv function f(..., callback) and parks until the callback.
-- `cleanup(result)` runs when the task is gone before the result arrives
-- (cancelled), so an fd opened for nobody is closed again.
local function await(cleanup, f, ...)
  local co, tok = token()
  local args = pack(...)
  args.n = args.n + 1
  args[args.n] = function(err, a, b)
    if not wake(co, tok, err, a, b) and not err and cleanup then cleanup(a) end
  end
  local req, err = f(unpack(args, 1, args.n))
  if not req then return err end
  return park()
end

local function close_fd(fd) uv.fs_close(fd, function() end) end

-- A to-be-closed guard for an fd held across awaits. The normal paths close
-- the fd themselves and disarm the guard (`g.fd = nil`); when the task dies
-- in between (an error, or a cancel while a read or write is pending) the
-- guard closes the fd without waiting, and removes a temporary file.
local Guard = {
  __close = function(g)
    if g.fd then close_fd(g.fd) end
    if g.unlink then uv.fs_unlink(g.unlink, function() end) end
  end,
}

local function guard(fd, unlink)
  return setmetatable({ fd = fd, unlink = unlink }, Guard)
end

local OPEN_FLAGS = {
  r = "r", ["r+"] = "r+", w = "w", ["w+"] = "w+", a = "a", ["a+"] = "a+",
  wx = "wx", ["wx+"] = "wx+", ax = "ax", ["ax+"] = "ax+",
}

-- ---------------------------------------------------------------------
-- Whole files

---Reads a whole file. Yields.
---@param path string
---@return string? data, string? err, string? code
function M.read_file(path)
  check.arg(1, "read_file", path, "string")
  local err, fd = await(close_fd, uv.fs_open, path, "r", 0)
  if err then return fail(err) end
  local g <close> = guard(fd)
  -- Offset -1 reads where the fd stands: the same for a fresh regular file,
  -- and it also works for pipes and devices, which cannot pread.
  local parts = {}
  while true do
    local rerr, chunk = await(nil, uv.fs_read, fd, 65536, -1)
    if rerr then
      g.fd = nil
      await(nil, uv.fs_close, fd)
      return fail(rerr)
    end
    if chunk == "" then break end
    parts[#parts + 1] = chunk
  end
  g.fd = nil
  await(nil, uv.fs_close, fd)
  return table.concat(parts)
end

local function write_all(fd, data)
  local offset = 0
  while offset < #data do
    local err, n = await(nil, uv.fs_write, fd, offset == 0 and data or data:sub(offset + 1), -1)
    if err then return err end
    offset = offset + n
  end
end

---Writes `data` to `path`, replacing it. With `{atomic = true}` the data goes
---to a temporary file in the same directory that is renamed over `path`, so
---readers see the old or the new content, never a mix. Yields.
---@param path string
---@param data string
---@param opts? {atomic?: boolean, mode?: integer, append?: boolean}
---@return boolean? ok, string? err, string? code
function M.write_file(path, data, opts)
  check.arg(1, "write_file", path, "string")
  check.arg(2, "write_file", data, "string")
  check.opt(3, "write_file", opts, "table")
  opts = opts or {}
  local mode = opts.mode or tonumber("644", 8)
  local target = path
  if opts.atomic then
    target = ("%s.tmp-%d-%d"):format(path, uv.os_getpid(), uv.hrtime())
  end
  local err, fd = await(close_fd, uv.fs_open, target, opts.append and "a" or "w", mode)
  if err then return fail(err) end
  local g <close> = guard(fd, opts.atomic and target or nil)
  local werr = write_all(fd, data)
  if not werr and opts.atomic then werr = await(nil, uv.fs_fsync, fd) end
  g.fd = nil
  await(nil, uv.fs_close, fd)
  if not werr and opts.atomic then werr = await(nil, uv.fs_rename, target, path) end
  g.unlink = nil
  if werr then
    if opts.atomic then await(nil, uv.fs_unlink, target) end
    return fail(werr)
  end
  return true
end

-- ---------------------------------------------------------------------
-- Metadata and directories

---File metadata: `{type=, size=, mode=, mtime={sec=,nsec=}, ...}` as libuv
---gives it. Yields.
---@param path string
---@return table? stat, string? err, string? code
function M.stat(path)
  check.arg(1, "stat", path, "string")
  local err, st = await(nil, uv.fs_stat, path)
  if err then return fail(err) end
  return st
end

---Like stat, but does not follow a final symbolic link. Yields.
---@param path string
function M.lstat(path)
  check.arg(1, "lstat", path, "string")
  local err, st = await(nil, uv.fs_lstat, path)
  if err then return fail(err) end
  return st
end

---Lists a directory, sorted by name: names, or with `{types = true}` tables
---`{name=, type=}`. Yields.
---@param path string
---@param opts? {types?: boolean}
---@return table? entries, string? err, string? code
function M.readdir(path, opts)
  check.arg(1, "readdir", path, "string")
  check.opt(2, "readdir", opts, "table")
  local err, req = await(nil, uv.fs_scandir, path)
  if err then return fail(err) end
  local out = {}
  while true do
    local name, kind = uv.fs_scandir_next(req)
    if not name then break end
    out[#out + 1] = (opts and opts.types) and { name = name, type = kind } or name
  end
  if opts and opts.types then
    table.sort(out, function(a, b) return a.name < b.name end)
  else
    table.sort(out)
  end
  return out
end

---Creates a directory; with `{recursive = true}` also its parents, and an
---existing directory is not an error. Yields.
---@param path string
---@param opts? {recursive?: boolean, mode?: integer}
---@return boolean? ok, string? err, string? code
function M.mkdir(path, opts)
  check.arg(1, "mkdir", path, "string")
  check.opt(2, "mkdir", opts, "table")
  opts = opts or {}
  local mode = opts.mode or tonumber("755", 8)
  if not opts.recursive then
    local err = await(nil, uv.fs_mkdir, path, mode)
    if err then return fail(err) end
    return true
  end
  local prefix = path:sub(1, 1) == "/" and "/" or ""
  for part in path:gmatch("[^/]+") do
    prefix = prefix .. part
    local err = await(nil, uv.fs_mkdir, prefix, mode)
    if err and not err:match("^EEXIST") then return fail(err) end
    if err then
      local st = M.stat(prefix)
      if not st or st.type ~= "directory" then return fail(err) end
    end
    prefix = prefix .. "/"
  end
  return true
end

local function simple(name, f, nargs)
  return function(...)
    for i = 1, nargs do check.arg(i, name, (select(i, ...)), "string", 2) end
    local err = await(nil, f, ...)
    if err then return fail(err) end
    return true
  end
end

---Removes a file. Yields. Returns true, or nil, message, code.
M.unlink = simple("unlink", uv.fs_unlink, 1)
---Removes an empty directory. Yields.
M.rmdir = simple("rmdir", uv.fs_rmdir, 1)
---Renames `from` to `to`, replacing `to`. Yields.
M.rename = simple("rename", uv.fs_rename, 2)

-- ---------------------------------------------------------------------
-- Open files

local File = {}
File.__index = File

-- Reads and writes go to the file's own position (pread/pwrite), so seek
-- costs no system call. Pipes and devices cannot do that: the first ESPIPE
-- turns the file into a stream that reads and writes where it stands.
local function at(self, f, fd, arg, offset)
  if not self.stream then
    local err, res = await(nil, f, fd, arg, offset)
    if not (err and err:match("^ESPIPE")) then return err, res end
    self.stream = true
  end
  return await(nil, f, fd, arg, -1)
end

local function live(self, fname)
  if not self.fd then error(("bad argument #1 to '%s' (file is closed)"):format(fname), 3) end
  return self.fd
end

---Reads up to `n` bytes (default: the rest of the file) from the current
---position. Returns nil at end of file. Yields.
---@param n? integer
---@return string? data, string? err, string? code
function File:read(n)
  local fd = live(self, "read")
  check.opt(1, "read", n, "number")
  if n == nil then
    local parts = {}
    while true do
      local chunk, err, code = self:read(65536)
      if err then return nil, err, code end
      if not chunk then break end
      parts[#parts + 1] = chunk
    end
    if #parts == 0 then return nil end
    return table.concat(parts)
  end
  local err, chunk = at(self, uv.fs_read, fd, n, self.pos)
  if err then return fail(err) end
  if chunk == "" then return nil end
  self.pos = self.pos + #chunk
  return chunk
end

---Writes `data` at the current position (at the end in append mode).
---Returns the file. Yields.
---@param data string
function File:write(data)
  local fd = live(self, "write")
  check.arg(1, "write", data, "string")
  local offset = self.append and -1 or self.pos
  local done = 0
  while done < #data do
    local err, n = at(self, uv.fs_write, fd, done == 0 and data or data:sub(done + 1),
      offset < 0 and -1 or offset + done)
    if err then return fail(err) end
    done = done + n
  end
  if not self.append then self.pos = self.pos + done end
  return self
end

---Moves the position like `io` files: `seek([whence [, offset]])` with
---whence "set", "cur" (default) or "end". Returns the new position. Yields
---for "end".
---@param whence? "set"|"cur"|"end"
---@param offset? integer
function File:seek(whence, offset)
  live(self, "seek")
  whence = whence or "cur"
  offset = offset or 0
  check.arg(2, "seek", offset, "number")
  if whence == "set" then
    self.pos = offset
  elseif whence == "cur" then
    self.pos = self.pos + offset
  elseif whence == "end" then
    local err, st = await(nil, uv.fs_fstat, self.fd)
    if err then return fail(err) end
    self.pos = st.size + offset
  else
    error("bad argument #1 to 'seek' (invalid option '" .. tostring(whence) .. "')", 2)
  end
  if self.pos < 0 then self.pos = 0 end
  return self.pos
end

---Closes the file. Idempotent. Yields.
function File:close()
  local fd = self.fd
  if not fd then return true end
  self.fd = nil
  local err = await(nil, uv.fs_close, fd)
  if err then return fail(err) end
  return true
end

-- Scope exit (`local f <close> = ...`) may come from an error or a cancel,
-- where waiting is not possible: close without waiting.
function File:__close()
  local fd = self.fd
  self.fd = nil
  if fd then close_fd(fd) end
end
function File:__gc() if self.fd then uv.fs_close(self.fd) end end
function File:__tostring() return self.fd and ("file (%d)"):format(self.fd) or "file (closed)" end

---Opens a file with an `io.open` mode ("r", "w", "a", "r+", "w+", "a+", and
---"x" forms that fail if the file exists). Yields.
---@param path string
---@param mode? string
---@return table? file, string? err, string? code
function M.open(path, mode)
  check.arg(1, "open", path, "string")
  check.opt(2, "open", mode, "string")
  mode = (mode or "r"):gsub("b", "")
  local flags = OPEN_FLAGS[mode] or OPEN_FLAGS[mode:gsub("x", "") .. "x"]
  if not flags then
    error("bad argument #2 to 'open' (invalid mode '" .. mode .. "')", 2)
  end
  local err, fd = await(close_fd, uv.fs_open, path, flags, tonumber("644", 8))
  if err then return fail(err) end
  return setmetatable({ fd = fd, pos = 0, append = mode:sub(1, 1) == "a", path = path }, File)
end

-- ---------------------------------------------------------------------
-- Watching for changes

local Watcher = {}
Watcher.__index = Watcher

---Stops the watcher; idempotent.
function Watcher:stop()
  self.stopped = true
  if not self.handle:is_closing() then self.handle:close() end
end

---Lets the process exit while this watcher is active.
function Watcher:unref()
  self.handle:unref()
  return self
end

function Watcher:__tostring()
  return ("watcher<%s%s>"):format(self.path, self.handle:is_closing() and " stopped" or "")
end

-- The watcher, or the start's error (its handle closed).
local function started(w, ok, err)
  if not ok then
    w.handle:close()
    return fail(err)
  end
  return w
end

-- An event's task: events already queued when :stop() ran are dropped,
-- so after stop the function is never called again.
local function run_event(w, fn, ...)
  if not w.stopped then return fn(...) end
end

---Watches `path` (a file or directory) with the OS's change notification
---(inotify on Linux): each event runs `fn(event, filename)` in a new task,
---event being "change" or "rename" ("error" with a message on failure).
---`opts.recursive` watches subdirectories where the OS supports it.
---Runs until `:stop()`; the watcher keeps the process alive (see :unref()).
---Returns the watcher, or nil, message, code.
---@param path string
---@param fn fun(event: string, filename: string)
---@param opts? {recursive?: boolean}
function M.watch(path, fn, opts)
  check.arg(1, "watch", path, "string")
  check.arg(2, "watch", fn, "function")
  check.opt(3, "watch", opts, "table")
  local h = uv.new_fs_event()
  local w = setmetatable({ handle = h, path = path }, Watcher)
  local ok, err = h:start(path, { recursive = opts and opts.recursive or false },
    function(werr, filename, events)
      if werr then
        core.spawn(run_event, w, fn, "error", werr)
      else
        core.spawn(run_event, w, fn, events.rename and "rename" or "change", filename)
      end
    end)
  return started(w, ok, err)
end

---Polls `path` every `interval` seconds by stat(): when its metadata
---changes, runs `fn(current, previous)` (stat tables) in a new task. A
---fallback for file systems without change notification. Runs until
---`:stop()`. Returns the watcher, or nil, message, code.
---@param path string
---@param interval number seconds
---@param fn fun(current: table, previous: table)
function M.poll(path, interval, fn)
  check.arg(1, "poll", path, "string")
  check.arg(2, "poll", interval, "number")
  check.arg(3, "poll", fn, "function")
  if interval <= 0 or interval ~= interval then
    error("bad argument #2 to 'poll' (positive number expected)", 2)
  end
  local h = uv.new_fs_poll()
  local w = setmetatable({ handle = h, path = path }, Watcher)
  local ok, err = h:start(path, math.max(1, math.ceil(interval * 1000)),
    function(perr, prev, curr)
      if not perr then core.spawn(run_event, w, fn, curr, prev) end
    end)
  return started(w, ok, err)
end

return M
