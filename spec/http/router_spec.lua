-- Specs for lua/tycho/http/router.lua.
local tycho = require "tycho"
local request = tycho.test.request

local function app()
  local a = tycho.http.router()
  a:get("/", function() return "root" end)
  a:get("/users/:id", function(req) return { id = req.params.id } end)
  a:post("/users/:id", function(req) return "posted " .. req.params.id end)
  a:get("/users/:id/posts/:post", function(req) return req.params.id .. "/" .. req.params.post end)
  a:get("/files/*", function(req) return req.params["*"] end)
  a:any("/anything", function(req) return req.method end)
  return a
end

describe("router", function()
  it("routes static paths and params", function()
    local a = app()
    assert.are.equal("root", request(a, { path = "/" }).body)
    assert.are.equal('{"id":"42"}', request(a, { path = "/users/42" }).body)
    assert.are.equal("posted 7", request(a, { method = "POST", path = "/users/7" }).body)
    assert.are.equal("1/2", request(a, { path = "/users/1/posts/2" }).body)
  end)

  it("matches a wildcard tail", function()
    assert.are.equal("a/b/c.txt", request(app(), { path = "/files/a/b/c.txt" }).body)
  end)

  it("answers 404 for unknown paths", function()
    local r = request(app(), { path = "/nope" })
    assert.are.equal(404, r.status)
  end)

  it("answers 405 with Allow when only other methods match", function()
    local r = request(app(), { method = "DELETE", path = "/users/1" })
    assert.are.equal(405, r.status)
    assert.are.equal("GET, HEAD, POST", r.headers.allow)
  end)

  it("falls back from HEAD to GET", function()
    local r = request(app(), { method = "HEAD", path = "/" })
    assert.are.equal(200, r.status)
    assert.are.equal("4", r.headers["content-length"])
  end)

  it("routes any method with any()", function()
    assert.are.equal("PATCH", request(app(), { method = "PATCH", path = "/anything" }).body)
  end)

  it("runs middleware in order, which may stop the chain", function()
    local a = tycho.http.router()
    local order = {}
    a:use(function(req, res, nxt)
      order[#order + 1] = "first"
      if req:header("x-block") then return res:status(403):send("blocked") end
      return nxt()
    end)
    a:use(function(req, _, nxt)
      order[#order + 1] = "second"
      req.user = "ann"
      return nxt()
    end)
    a:get("/", function(req) return "hello " .. req.user end)
    assert.are.equal("hello ann", request(a, { path = "/" }).body)
    assert.are.same({ "first", "second" }, order)
    local blocked = request(a, { path = "/", headers = { ["X-Block"] = "1" } })
    assert.are.equal(403, blocked.status)
  end)

  it("names bad arguments and bad patterns", function()
    local a = tycho.http.router()
    assert.has_error(function() a:get(42, function() end) end,
      "bad argument #1 to 'get' (string expected, got number)")
    assert.has_error(function() a:get("/x", "nope") end,
      "bad argument #2 to 'get' (function expected, got string)")
    assert.has_error(function() a:get("nope", function() end) end)
    assert.has_error(function() a:get("/a/*/b", function() end) end)
  end)
end)
