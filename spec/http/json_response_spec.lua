-- Specs for JSON responses (src/http/message.c: res:json and a returned
-- table, encoded by src/core/json.c), through tycho.test.request: the real
-- connection code over an in-process socket pair.
local tycho = require "tycho"
local request = tycho.test.request
local json = tycho.json

describe("res:json", function()
  it("sends the value as application/json with a length, status 200 or the one given", function()
    local r = request(function(_, res) res:json({ message = "Hello, World!" }) end)
    assert.are.equal(200, r.status)
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.equal('{"message":"Hello, World!"}', r.body)
    assert.are.equal(tostring(#r.body), r.headers["content-length"])
    local made = request(function(_, res) res:json({ 1, 2 }, 201) end)
    assert.are.equal(201, made.status)
    assert.are.equal("[1,2]", made.body)
  end)

  it("replaces a Content-Type and Content-Length the handler set, keeps other headers", function()
    local r = request(function(_, res)
      res:header("Content-Type", "text/html"):header("Content-Length", "999")
      res:header("X-Kept", "yes")
      res:json({ ok = true })
    end)
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.equal("11", r.headers["content-length"])
    assert.are.equal("yes", r.headers["x-kept"])
    assert.are.equal('{"ok":true}', r.body)
  end)

  it("encodes the empty-array marker, null and scalars as tycho.json.encode does", function()
    local value = { items = json.empty_array, none = json.null, list = { json.empty_array } }
    local r = request(function(_, res) res:json(value) end)
    assert.are.same(json.decode(json.encode(value)), json.decode(r.body))
    assert.matches('"items":%[%]', r.body)
    assert.matches('"list":%[%[%]%]', r.body)
    assert.are.equal("null", request(function(_, res) res:json(nil) end).body)
    assert.are.equal('"text"', request(function(_, res) res:json("text") end).body)
  end)

  it("raises at the handler's line on a value JSON cannot hold, and the handler can go on", function()
    local err
    local r = request(function(_, res)
      local ok, e = pcall(function() res:json({ f = print }) end)
      err = e
      assert(not ok)
      res:status(422):send("no")
    end)
    assert.matches("json_response_spec%.lua:%d+: Cannot serialise function", err)
    assert.are.equal(422, r.status)
    assert.are.equal("no", r.body)
  end)

  it("names its own arguments on misuse and refuses a second answer", function()
    local bad_status, twice
    request(function(_, res)
      bad_status = select(2, pcall(function() res:json({}, 99) end))
      res:send("first")
      twice = select(2, pcall(function() res:json({}) end))
    end)
    assert.matches("bad argument #2 to 'json' %(status must be 100%-999%)", bad_status)
    assert.matches("response headers were already sent", twice)
  end)
end)

describe("a handler that returns a table", function()
  it("answers with it as JSON", function()
    local r = request(function() return { message = "Hello, World!", items = json.empty_array } end)
    assert.are.equal(200, r.status)
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.same({ message = "Hello, World!", items = {} }, json.decode(r.body))
    assert.matches('"items":%[%]', r.body)
  end)

  it("keeps the status and headers the handler set, but not its Content-Type", function()
    local r = request(function(_, res)
      res:status(202):header("X-Kept", "1"):header("Content-Type", "text/plain")
      return { queued = true }
    end)
    assert.are.equal(202, r.status)
    assert.are.equal("1", r.headers["x-kept"])
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.equal('{"queued":true}', r.body)
  end)

  it("answers 500 without the handler's headers when the table cannot be encoded", function()
    local r = request(function(_, res)
      res:header("X-Dropped", "1")
      return { f = print }
    end)
    assert.are.equal(500, r.status)
    assert.are.equal("Internal Server Error\n", r.body)
    assert.is_nil(r.headers["x-dropped"])
    assert.are.equal("text/plain; charset=utf-8", r.headers["content-type"])
  end)

  it("still goes through the return hook for status, headers, body", function()
    local r = request(function() return 201, { ["X-A"] = "b" }, { made = 1 } end)
    assert.are.equal(201, r.status)
    assert.are.equal("b", r.headers["x-a"])
    assert.are.equal('{"made":1}', r.body)
  end)
end)
