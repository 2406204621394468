-- Specs for tycho.dns (lua/tycho/dns.lua): lookups through the system
-- resolver; only names this machine knows (localhost, /etc/hosts).
local tycho = require "tycho"
local dns = tycho.dns

describe("dns", function()
  it("resolves localhost to loopback addresses", function()
    local addrs = assert(dns.resolve("localhost"))
    assert.is_true(#addrs >= 1)
    local loopback = false
    for _, a in ipairs(addrs) do
      if a == "127.0.0.1" or a == "::1" then loopback = true end
    end
    assert.is_true(loopback, table.concat(addrs, ", "))
  end)

  it("restricts the address family", function()
    local v4 = assert(dns.resolve("localhost", { family = "inet" }))
    for _, a in ipairs(v4) do assert.matches("^%d+%.%d+%.%d+%.%d+$", a) end
    assert.are.same({ "127.0.0.1" }, dns.resolve("127.0.0.1"))
  end)

  it("returns nil, message, code for an unknown name", function()
    local addrs, err, code = dns.resolve("no-such-host.invalid")
    assert.is_nil(addrs)
    assert.matches("^EAI_", code)
    assert.is_string(err)
  end)

  it("reverses 127.0.0.1 to a name", function()
    local name = assert(dns.reverse("127.0.0.1"))
    assert.is_string(name)
    assert.is_true(#name > 0)
    local back = assert(dns.resolve(name, { family = "inet" }))
    assert.are.equal("127.0.0.1", back[1])
  end)

  it("tells IP literals from names", function()
    assert.is_true(dns.is_ip("10.0.0.1"))
    assert.is_true(dns.is_ip("::1"))
    assert.is_false(dns.is_ip("localhost"))
  end)

  it("names bad arguments", function()
    assert.has_error(function() dns.resolve(nil) end,
      "bad argument #1 to 'resolve' (string expected, got nil)")
    assert.has_error(function() dns.resolve("localhost", { family = "x" }) end,
      "bad argument #2 to 'resolve' (family must be 'inet' or 'inet6')")
    assert.has_error(function() dns.reverse("localhost") end,
      "bad argument #1 to 'reverse' (IP address expected, got 'localhost')")
  end)
end)
