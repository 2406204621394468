-- Specs for tycho.http.cors (lua/tycho/http/cors.lua): the middleware on a
-- router, through tycho.test.request and over a real socket.
local tycho = require "tycho"
local request = tycho.test.request

-- A router with the CORS middleware and two routes; `hits` counts the
-- requests that reached a route.
local function app_with(opts)
  local app = tycho.http.router()
  local state = { hits = 0 }
  app:use(tycho.http.cors(opts))
  app:get("/items", function(_, res)
    state.hits = state.hits + 1
    res:header("X-Total", "2")
    return { "a", "b" }
  end)
  app:post("/items", function()
    state.hits = state.hits + 1
    return 201, {}, "made"
  end)
  return app, state
end

local function preflight(app, origin, method, headers)
  return request(app, { method = "OPTIONS", path = "/items", headers = {
    Origin = origin, ["Access-Control-Request-Method"] = method,
    ["Access-Control-Request-Headers"] = headers,
  } })
end

describe("tycho.http.cors", function()
  -- Fetch standard, "CORS protocol and HTTP caches": a cache may keep the
  -- answer to a request without Origin (a navigation) and give it to a CORS
  -- request later, so that answer must say it varies, or carry the static
  -- Access-Control-Allow-Origin the CORS request would get.
  it("marks the answer to a request without Origin Vary: Origin when origins vary", function()
    local app, state = app_with { origins = { "https://a.example" }, expose = "X-Total" }
    local r = request(app, { path = "/items" })
    assert.are.equal(200, r.status)
    assert.are.equal(1, state.hits)
    for name in pairs(r.headers) do assert.is_nil(name:match("^access%-control"), name) end
    assert.are.equal("Origin", r.headers.vary)
  end)

  it("gives a request without Origin the static '*' answer when origins = '*'", function()
    local app, state = app_with { expose = "X-Total" }
    local r = request(app, { path = "/items" })
    assert.are.equal(200, r.status)
    assert.are.equal(1, state.hits)
    assert.are.equal("*", r.headers["access-control-allow-origin"])
    assert.are.equal("X-Total", r.headers["access-control-expose-headers"])
    assert.is_nil(r.headers.vary)
  end)

  it("answers * on simple requests with origins = '*' (no Vary)", function()
    local app, state = app_with {}
    local r = request(app, { path = "/items", headers = { Origin = "https://any.example" } })
    assert.are.equal(200, r.status)
    assert.are.equal(1, state.hits)
    assert.are.equal("*", r.headers["access-control-allow-origin"])
    assert.is_nil(r.headers.vary)
    assert.is_nil(r.headers["access-control-allow-credentials"])
  end)

  it("reflects a listed origin with Vary: Origin, credentials and exposed headers", function()
    local app = app_with { origins = { "https://a.example", "https://b.example" },
      credentials = true, expose = { "X-Total", "X-Other" } }
    local r = request(app, { path = "/items", headers = { Origin = "https://b.example" } })
    assert.are.equal(200, r.status)
    assert.are.equal("https://b.example", r.headers["access-control-allow-origin"])
    assert.are.equal("Origin", r.headers.vary)
    assert.are.equal("true", r.headers["access-control-allow-credentials"])
    assert.are.equal("X-Total, X-Other", r.headers["access-control-expose-headers"])
  end)

  it("serves an unlisted origin without CORS headers but with Vary: Origin", function()
    local app, state = app_with { origins = { "https://a.example" }, credentials = true }
    local r = request(app, { path = "/items", headers = { Origin = "https://evil.example" } })
    assert.are.equal(200, r.status)
    assert.are.equal(1, state.hits)
    assert.is_nil(r.headers["access-control-allow-origin"])
    assert.is_nil(r.headers["access-control-allow-credentials"])
    assert.are.equal("Origin", r.headers.vary)
  end)

  it("answers a preflight with 204 and never reaches the route", function()
    local app, state = app_with { origins = { "https://a.example" }, methods = { "GET", "POST" },
      headers = { "Content-Type", "X-Token" }, max_age = 600, credentials = true }
    local r = preflight(app, "https://a.example", "POST", "content-type")
    assert.are.equal(204, r.status)
    assert.are.equal(0, state.hits)
    assert.are.equal("", r.body)
    assert.are.equal("https://a.example", r.headers["access-control-allow-origin"])
    assert.are.equal("GET, POST", r.headers["access-control-allow-methods"])
    assert.are.equal("Content-Type, X-Token", r.headers["access-control-allow-headers"])
    assert.are.equal("600", r.headers["access-control-max-age"])
    assert.are.equal("true", r.headers["access-control-allow-credentials"])
    assert.are.equal("Origin", r.headers.vary)
  end)

  it("reflects the requested headers when none are configured", function()
    local r = preflight(app_with {}, "https://a.example", "PUT", "x-a, x-b")
    assert.are.equal(204, r.status)
    assert.are.equal("*", r.headers["access-control-allow-origin"])
    assert.are.equal("GET, HEAD, PUT, PATCH, POST, DELETE",
      r.headers["access-control-allow-methods"])
    assert.are.equal("x-a, x-b", r.headers["access-control-allow-headers"])
    assert.are.equal("Access-Control-Request-Headers", r.headers.vary)
    assert.is_nil(r.headers["access-control-max-age"])
  end)

  it("answers a refused preflight with 204 and no Allow headers", function()
    local app, state = app_with { origins = function(o) return o:match("%.good%.example$") end }
    local r = preflight(app, "https://x.bad.example", "POST")
    assert.are.equal(204, r.status)
    assert.are.equal(0, state.hits)
    assert.is_nil(r.headers["access-control-allow-origin"])
    assert.is_nil(r.headers["access-control-allow-methods"])
    local ok = preflight(app, "https://x.good.example", "POST")
    assert.are.equal("https://x.good.example", ok.headers["access-control-allow-origin"])
  end)

  it("leaves an OPTIONS without Access-Control-Request-Method to the router", function()
    local app = app_with {}
    local r = request(app, { method = "OPTIONS", path = "/items",
      headers = { Origin = "https://a.example" } })
    assert.are.equal(405, r.status)
    assert.are.equal("*", r.headers["access-control-allow-origin"])
  end)

  it("raises for credentials with origins = '*' and for bad options", function()
    local cases = {
      { { credentials = true }, "credentials = true needs a list of origins" },
      { { origins = "*", credentials = true }, "credentials = true needs a list of origins" },
      { "x", "bad argument #1 to 'cors' %(table expected, got string%)" },
      { { origins = 3 }, "function expected, got number at field 'origins'" },
      { { origins = { "https://a.example", 2 } }, "string expected at item 2, got number at field 'origins'" },
      { { methods = 1 }, "string or table expected, got number at field 'methods'" },
      { { max_age = 1.5 }, "integer expected, got float at field 'max_age'" },
      { { credentials = "yes" }, "boolean expected, got string at field 'credentials'" },
      -- origins a browser never sends: they could never match
      { { origins = "https://a.example/" }, "'https://a.example/' is not an origin %(scheme://host%[:port%]" },
      { { origins = { "https://a.example", "a.example" } }, "'a.example' at item 2 is not an origin" },
      { { origins = { "https://A.example" } }, "'https://A.example' at item 1 is not an origin" },
      { { origins = "https://a.example/app" }, "is not an origin" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(tycho.http.cors, c[1])
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
    local ok, err = pcall(function() tycho.http.cors { credentials = true } end)
    assert.is_false(ok)
    assert.matches("cors_spec.lua:%d+: bad argument #1 to 'cors'", err)
    for _, origins in ipairs { "a.example", { "a.example" } } do
      ok, err = pcall(function() tycho.http.cors { origins = origins } end)
      assert.is_false(ok)
      assert.matches("cors_spec.lua:%d+: bad argument #1 to 'cors'", err)
    end
  end)

  it("accepts origins with ports, IPv6 hosts and 'null'", function()
    local app = app_with { origins = { "http://127.0.0.1:8080", "http://[::1]:3000", "null" } }
    for _, o in ipairs { "http://127.0.0.1:8080", "http://[::1]:3000", "null" } do
      local r = request(app, { path = "/items", headers = { Origin = o } })
      assert.are.equal(o, r.headers["access-control-allow-origin"])
    end
  end)

  it("works over a real socket with the HTTP client", function()
    local app = app_with { origins = "https://a.example", expose = "X-Total" }
    local server = assert(tycho.http.serve { port = 0, handler = app })
    local base = "http://127.0.0.1:" .. server.port .. "/items"
    local r = assert(tycho.http.request { url = base, method = "OPTIONS", headers = {
      Origin = "https://a.example", ["Access-Control-Request-Method"] = "POST" } })
    local simple = assert(tycho.http.get(base, { headers = { Origin = "https://a.example" } }))
    server:close()
    server:wait_closed()
    assert.are.equal(204, r.status)
    assert.are.equal("https://a.example", r.headers["access-control-allow-origin"])
    assert.are.equal(200, simple.status)
    assert.are.equal("X-Total", simple.headers["access-control-expose-headers"])
    assert.are.equal('["a","b"]', simple.body)
  end)
end)
