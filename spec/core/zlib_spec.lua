-- Specs for tycho.zlib (src/core/zlib.c). Data made here is checked by
-- decoding it back, and by the system's gzip(1) where another
-- implementation's view matters.
local tycho = require "tycho"
local zlib = require "tycho.zlib"
local net = require "spec.support.net"

-- Bytes that do not compress (an LCG), so sizes are predictable.
local function noise(n)
  local out, x = {}, 12345
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    out[i] = string.char(x >> 16 & 0xff)
  end
  return table.concat(out)
end

local TEXT = string.rep("the quick brown fox jumps over the lazy dog\n", 500)

describe("tycho.zlib", function()
  it("is tycho.zlib, lazily", function()
    assert.are.equal(zlib, tycho.zlib)
    assert.matches("^%d+%.%d+", zlib.version)
  end)

  it("gzips and gunzips, smaller for repetitive text", function()
    local gz = zlib.gzip(TEXT)
    assert.are.equal("\31\139", gz:sub(1, 2)) -- the gzip magic
    assert.is_true(#gz < #TEXT / 10)
    assert.are.equal(TEXT, zlib.gunzip(gz))
    assert.are.equal("", zlib.gunzip(zlib.gzip("")))
    local bin = noise(5000)
    assert.are.equal(bin, zlib.gunzip(zlib.gzip(bin, 9)))
    assert.is_true(#zlib.gzip(TEXT, 1) >= #zlib.gzip(TEXT, 9))
  end)

  it("writes gzip that gzip(1) reads, and reads what gzip(1) writes", function()
    local dir = net.tmpdir("zlib")
    local f = assert(io.open(dir .. "/a.gz", "wb"))
    f:write(zlib.gzip(TEXT))
    f:close()
    local p = assert(io.popen("gzip -dc '" .. dir .. "/a.gz'"))
    assert.are.equal(TEXT, p:read("a"))
    p:close()
    p = assert(io.popen("printf 'made by gzip\\n' | gzip -c9"))
    local theirs = p:read("a")
    p:close()
    assert.are.equal("made by gzip\n", zlib.gunzip(theirs))
    net.rmdir(dir)
  end)

  it("reads several gzip members back to back, as gzip(1) does", function()
    assert.are.equal("onetwo", zlib.gunzip(zlib.gzip("one") .. zlib.gzip("two")))
  end)

  it("deflates and inflates in zlib and raw formats", function()
    local z = zlib.deflate(TEXT)
    assert.are.equal(0x78, z:byte(1)) -- a zlib header
    assert.are.equal(TEXT, zlib.inflate(z))
    local raw = zlib.deflate(TEXT, 9, "raw")
    assert.are.equal(TEXT, zlib.inflate(raw, nil, "raw"))
    -- inflate's default takes raw deflate too (some servers send it)
    assert.are.equal(TEXT, zlib.inflate(raw))
  end)

  it("returns nil, message, code for corrupt and truncated input", function()
    local v, err, code = zlib.gunzip("definitely not gzip")
    assert.is_nil(v)
    assert.are.equal("Z_DATA_ERROR", code)
    assert.matches("^Z_DATA_ERROR: ", err)
    local gz = zlib.gzip(TEXT)
    v, err, code = zlib.gunzip(gz:sub(1, #gz - 10))
    assert.is_nil(v)
    assert.are.equal("Z_BUF_ERROR", code)
    assert.matches("truncated", err)
    -- a flipped byte in the CRC-32 trailer: the check catches it
    local i = #gz - 6
    local bad = gz:sub(1, i - 1) .. string.char(gz:byte(i) ~ 0xff) .. gz:sub(i + 1)
    v, _, code = zlib.gunzip(bad)
    assert.is_nil(v)
    assert.are.equal("Z_DATA_ERROR", code)
    v, _, code = zlib.gunzip(gz .. "junk")
    assert.is_nil(v)
    assert.are.equal("Z_DATA_ERROR", code)
    v, _, code = zlib.inflate("\120\156garbage")
    assert.is_nil(v)
    assert.are.equal("Z_DATA_ERROR", code)
  end)

  it("stops a zip bomb at max_size", function()
    local bomb = zlib.gzip(string.rep("\0", 8 * 1024 * 1024))
    assert.is_true(#bomb < 16 * 1024)
    local v, err, code = zlib.gunzip(bomb, 1024 * 1024)
    assert.is_nil(v)
    assert.are.equal("Z_TOO_LARGE", code)
    assert.matches("max_size", err)
    assert.are.equal(8 * 1024 * 1024, #zlib.gunzip(bomb, 8 * 1024 * 1024))
    local s = zlib.stream("gunzip", { max_size = 100 })
    v, _, code = s:update(bomb)
    assert.is_nil(v)
    assert.are.equal("Z_TOO_LARGE", code)
    assert.has_error(function() s:update("x") end, "stream is finished")
  end)

  it("streams: each flushed update decodes on its own", function()
    local enc, dec = zlib.stream("gzip"), zlib.stream("gunzip")
    for i = 1, 20 do
      local line = ("event %d\n"):format(i)
      local piece = enc:update(line, true)
      assert.is_true(#piece > 0)
      -- everything given so far comes out of the other side now
      assert.are.equal(line, dec:update(piece))
    end
    assert.are.equal("", dec:update(enc:finish()))
    assert.are.equal("", dec:finish())
    assert.has_error(function() enc:update("more") end, "stream is finished")
  end)

  it("streams input cut at every size, with output gathered", function()
    local gz = zlib.gzip(TEXT)
    for _, size in ipairs({ 1, 7, 100, 4096 }) do
      local dec, out = zlib.stream("gunzip"), {}
      for i = 1, #gz, size do out[#out + 1] = assert(dec:update(gz:sub(i, i + size - 1))) end
      out[#out + 1] = assert(dec:finish())
      assert.are.equal(TEXT, table.concat(out))
    end
    local enc, parts = zlib.stream("deflate", { level = 9 }), {}
    for i = 1, #TEXT, 1000 do parts[#parts + 1] = enc:update(TEXT:sub(i, i + 999)) end
    parts[#parts + 1] = enc:finish()
    assert.are.equal(TEXT, zlib.inflate(table.concat(parts)))
  end)

  it("a stream's finish fails on a cut-short input", function()
    local dec = zlib.stream("inflate")
    local z = zlib.deflate(TEXT)
    assert(dec:update(z:sub(1, 20)))
    local v, _, code = dec:finish()
    assert.is_nil(v)
    assert.are.equal("Z_BUF_ERROR", code)
  end)

  it("closes streams (explicitly, by <close> and by the collector)", function()
    do
      local s <close> = zlib.stream("gzip")
      s:update("x")
    end
    local s = zlib.stream("gunzip")
    s:close()
    s:close()
    assert.has_error(function() s:finish() end, "stream is finished")
    assert.matches("zlib stream %(gunzip, finished%)", tostring(s))
    for _ = 1, 50 do zlib.stream("gzip"):update(TEXT) end
    collectgarbage()
  end)

  it("raises for misuse, naming the argument", function()
    assert.has_error(function() zlib.gzip(nil) end,
      "bad argument #1 to 'gzip' (string expected, got nil)")
    assert.has_error(function() zlib.gzip("x", 10) end,
      "bad argument #2 to 'gzip' (level must be -1 to 9)")
    assert.has_error(function() zlib.gunzip("x", -1) end,
      "bad argument #2 to 'gunzip' (max_size must not be negative)")
    assert.has_error(function() zlib.deflate("x", 6, "brotli") end,
      "bad argument #3 to 'deflate' (invalid option 'brotli')")
    assert.has_error(function() zlib.stream("zip") end,
      "bad argument #1 to 'stream' (invalid option 'zip')")
    assert.has_error(function() zlib.stream("gzip", 5) end,
      "bad argument #2 to 'stream' (table expected, got number)")
    assert.has_error(function() zlib.stream("gzip"):update(nil) end,
      "bad argument #1 to 'update' (string expected, got nil)")
    assert.has_error(function() zlib.stream("gzip", { level = 10 }) end,
      "bad argument #2 to 'stream' (field 'level' must be -1 to 9)")
    assert.has_error(function() zlib.stream("gzip", { level = "x" }) end,
      "bad argument #2 to 'stream' (field 'level' must be -1 to 9)")
    assert.has_error(function() zlib.stream("gunzip", { max_size = -1 }) end,
      "bad argument #2 to 'stream' (field 'max_size' must be a non-negative integer)")
  end)

  it("an inflate stream tells zlib from raw by its first byte, not by an empty update", function()
    for _, format in ipairs { "raw", "zlib" } do
      local s = zlib.stream("inflate")
      assert.are.equal("", s:update(""))
      assert.are.equal("hello", s:update(zlib.deflate("hello", 1, format)) .. s:finish(), format)
    end
    local s = zlib.stream("inflate")
    local _, _, code = s:finish()
    assert.are.equal("Z_BUF_ERROR", code)
  end)
end)
