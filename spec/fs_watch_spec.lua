-- Specs for tycho.fs.watch and tycho.fs.poll (end of lua/tycho/fs.lua):
-- real files in a temporary directory, changed while watched.
local tycho = require "tycho"
local support = require "spec.support.net"
local fs = tycho.fs

describe("fs.watch", function()
  local dir
  before_each(function() dir = support.tmpdir("watch") end)
  after_each(function() support.rmdir(dir) end)

  it("reports a file created and changed in a watched directory", function()
    local events = {}
    local w = assert(fs.watch(dir, function(event, name)
      events[#events + 1] = { event, name }
    end))
    assert(fs.write_file(dir .. "/a.txt", "one"))
    support.wait_for(function() return #events > 0 end, "an event")
    assert.are.equal("a.txt", events[1][2])
    assert.are.equal("rename", events[1][1]) -- a new name appeared
    local n = #events
    local f = assert(fs.open(dir .. "/a.txt", "a"))
    f:write("two")
    f:close()
    support.wait_for(function() return #events > n end, "a change event")
    assert.are.equal("change", events[#events][1])
    w:stop()
  end)

  it("watches a single file and stops reporting after stop", function()
    local file = dir .. "/watched.txt"
    assert(fs.write_file(file, "v1"))
    local count = 0
    local w = assert(fs.watch(file, function(event) if event == "change" then count = count + 1 end end))
    assert(fs.write_file(file, "v2"))
    support.wait_for(function() return count > 0 end, "a change")
    w:stop()
    local seen = count
    -- A second watcher proves the next write is reported by the kernel,
    -- while the stopped one stays silent.
    local again = 0
    local w2 = assert(fs.watch(file, function() again = again + 1 end))
    assert(fs.write_file(file, "v3"))
    support.wait_for(function() return again > 0 end, "the second watcher")
    assert.are.equal(seen, count)
    w2:stop()
  end)

  it("returns nil, message, code for a missing path", function()
    local w, err, code = fs.watch(dir .. "/missing", function() end)
    assert.is_nil(w)
    assert.are.equal("ENOENT", code)
    assert.is_string(err)
  end)

  it("names bad arguments", function()
    assert.has_error(function() fs.watch(dir) end,
      "bad argument #2 to 'watch' (function expected, got nil)")
    assert.has_error(function() fs.poll(dir, 0, function() end) end,
      "bad argument #2 to 'poll' (positive number expected)")
  end)
end)

describe("fs.poll", function()
  local dir
  before_each(function() dir = support.tmpdir("poll") end)
  after_each(function() support.rmdir(dir) end)

  it("reports a size change with the current and previous stat", function()
    local file = dir .. "/p.txt"
    assert(fs.write_file(file, "1"))
    local changes = {}
    local w = assert(fs.poll(file, 0.01, function(cur, prev)
      changes[#changes + 1] = { cur.size, prev.size }
    end))
    -- fs_poll compares against its first stat, taken on the thread pool
    -- after start: change the file only once that baseline exists, and
    -- keep changing it until one change is seen.
    local i = 1
    support.wait_for(function()
      if #changes > 0 then return true end
      i = i + 1
      fs.write_file(file, ("x"):rep(i))
      return false
    end, "a poll report")
    assert.is_true(changes[1][1] ~= changes[1][2])
    w:stop()
  end)
end)
