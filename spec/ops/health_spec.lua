-- Specs for lua/tycho/http/health.lua: liveness and readiness handlers.
local tycho = require "tycho"
local health = require "tycho.http.health"
local request = require("tycho.test").request

describe("tycho.http.live and ready", function()
  after_each(function() health.draining = false end)

  it("live always answers 200 ok", function()
    local res = request(tycho.http.live(), { path = "/livez" })
    assert.equal(200, res.status)
    assert.equal("ok\n", res.body)
  end)

  it("ready answers 200, then 503 while draining", function()
    local h = tycho.http.ready()
    assert.equal(200, request(h, { path = "/readyz" }).status)
    health.draining = true
    local res = request(h, { path = "/readyz" })
    assert.equal(503, res.status)
    assert.equal("draining\n", res.body)
  end)

  it("ready follows the app's own check, a raising check meaning not ready", function()
    local up = false
    local h = tycho.http.ready(function() return up end)
    assert.equal(503, request(h, { path = "/" }).status)
    up = true
    assert.equal(200, request(h, { path = "/" }).status)
    local bad = tycho.http.ready(function() error("db down") end)
    assert.equal("not ready\n", request(bad, { path = "/" }).body)
  end)

  it("raises when the check is not a function", function()
    assert.has_error(function() tycho.http.ready(5) end,
      "bad argument #1 to 'ready' (function expected, got number)")
  end)
end)
