-- Specs for tycho.json (lua/tycho/json.lua): cjson with Tycho's defaults.
local json = require "tycho".json

describe("tycho.json.encode", function()
  it("encodes scalars, arrays and objects", function()
    assert.are.equal("1", json.encode(1))
    assert.are.equal("2.5", json.encode(2.5))
    assert.are.equal("true", json.encode(true))
    assert.are.equal('"hi"', json.encode("hi"))
    assert.are.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
    assert.are.equal('{"a":{"b":[true]}}', json.encode({ a = { b = { true } } }))
  end)

  it("escapes strings", function()
    assert.are.equal('"a\\"b\\\\c\\n\\u0001"', json.encode('a"b\\c\n\1'))
  end)

  it("encodes null and the empty-array marker", function()
    assert.are.equal("null", json.encode(json.null))
    assert.are.equal("[]", json.encode(json.empty_array))
    assert.are.equal('{"items":[]}', json.encode({ items = json.empty_array }))
    assert.are.equal('{"none":null}', json.encode({ none = json.null }))
    assert.are.equal("{}", json.encode({}))
    assert.are.equal('[[],[1]]', json.encode({ json.empty_array, { 1 } }))
  end)

  it("swaps every marker, and only the marker, for []", function()
    local e = json.empty_array
    assert.are.equal('[[],"a",[],{"x":[]}]', json.encode({ e, "a", e, { x = e } }))
    assert.are.equal('"\xff\xfe[]"', json.encode("\xff\xfe[]"))
    assert.are.equal('"x' .. e .. '"', json.encode("x" .. e))
  end)

  it("puts the caller's line on the message and ignores extra arguments", function()
    local ok, err = pcall(function()
      local text = json.encode({ f = print })
      return text
    end)
    assert.is_false(ok)
    assert.matches("^[^:]*json_spec%.lua:%d+: Cannot serialise function", err)
    assert.are.equal("null", json.encode())
    assert.are.equal("1", json.encode(1, 2))
  end)

  it("encodes sparse arrays with nulls instead of refusing them", function()
    assert.are.equal("[1,null,3]", json.encode({ 1, nil, 3 }))
  end)

  it("raises, at the caller, on values JSON cannot hold", function()
    local ok, err = pcall(json.encode, { f = print })
    assert.is_false(ok)
    assert.matches("^Cannot serialise function", err)
    assert.has_error(function() json.encode(0 / 0) end)
    assert.has_error(function() json.encode(math.huge) end)
    local loop = {}
    loop.self = loop
    assert.has_error(function() json.encode(loop) end)
  end)
end)

describe("tycho.json.decode", function()
  it("decodes objects and arrays", function()
    local v = json.decode('{"a":[1,"two",{"b":false}],"c":"d"}')
    assert.are.same({ a = { 1, "two", { b = false } }, c = "d" }, v)
  end)

  it("decodes integral numbers as integers and others as floats", function()
    assert.are.equal("integer", math.type(json.decode("3")))
    local v = json.decode('{"id":42,"list":[1,2.5,-7],"big":1e300}')
    assert.are.equal("integer", math.type(v.id))
    assert.are.equal(42, v.id)
    assert.are.equal("integer", math.type(v.list[1]))
    assert.are.equal("float", math.type(v.list[2]))
    assert.are.equal(-7, v.list[3])
    assert.are.equal("float", math.type(v.big))
  end)

  it("decodes null as json.null", function()
    assert.are.equal(json.null, json.decode("null"))
    assert.are.equal(json.null, json.decode("[null]")[1])
    assert.are.equal(json.null, json.decode('{"a":null}').a)
  end)

  it("round-trips what it encodes", function()
    local v = { name = "tycho", n = 3, tags = { "a", "b" }, nested = { ok = true } }
    assert.are.same(v, json.decode(json.encode(v)))
  end)

  it("returns nil and a message for invalid JSON", function()
    for _, text in ipairs({ "", "{bad", "[1,", '{"a":}', "nul", "'x'" }) do
      local v, err = json.decode(text)
      assert.is_nil(v, text)
      assert.are.equal("string", type(err), text)
      assert.is_nil(err:match("^[^:]*%.lua:%d+:"), "message has a Lua position: " .. err)
    end
    local _, err = json.decode("{bad")
    assert.matches("character 2", err)
  end)

  it("names its bad argument", function()
    assert.has_error(function() json.decode(nil) end,
      "bad argument #1 to 'decode' (string expected, got nil)")
    assert.has_error(function() json.decode({}) end,
      "bad argument #1 to 'decode' (string expected, got table)")
  end)
end)
