-- Specs for HTML form bodies: the multipart parser (src/http/multipart.c,
-- `tycho.http.multipart`) fed crafted bodies piece by piece, and req:form(),
-- req:parts() (lua/tycho/http/form.lua) through tycho.test.request (the real
-- connection code over a socket pair) and over a real socket.
local tycho = require "tycho"
require "tycho.http" -- adds req:form and req:parts (again, if busted unloaded it)
local core = require "tycho.core"
local multipart = require "tycho.http.multipart"
local support = require "spec.support.net"
local request = tycho.test.request

local CRLF = "\r\n"

-- A multipart body from a list of {headers..., body=} with boundary b.
local function body_of(b, parts, preamble, epilogue)
  local out = { preamble or "" }
  for _, p in ipairs(parts) do
    out[#out + 1] = "--" .. b .. CRLF
    for _, h in ipairs(p) do out[#out + 1] = h .. CRLF end
    out[#out + 1] = CRLF .. p.body .. CRLF
  end
  out[#out + 1] = "--" .. b .. "--" .. CRLF .. (epilogue or "")
  return table.concat(out)
end

-- Runs the parser over `pieces` and returns its events, adjacent data
-- merged: {"part", name, filename|false, content_type}, {"data", bytes},
-- {"end"}, {"done"} or {"error", message}.
local function events(boundary, pieces, limits)
  local p = multipart.parser(boundary, limits)
  local out, i = {}, 1
  for _ = 1, 100000 do -- a bound: every turn feeds or records an event
    local ev, v = p:next()
    if ev == "more" then
      if i <= #pieces then
        p:feed(pieces[i])
        i = i + 1
      else
        p:finish()
      end
    elseif ev == "data" then
      local last = out[#out]
      if last and last[1] == "data" then last[2] = last[2] .. v else out[#out + 1] = { "data", v } end
    elseif ev == "part" then
      out[#out + 1] = { "part", v.name, v.filename or false, v.content_type }
    elseif ev == nil then
      out[#out + 1] = { "error", v }
      return out
    else
      out[#out + 1] = { ev }
      if ev == "done" then return out end
    end
  end
  error("parser did not finish")
end

local function error_of(boundary, body, limits)
  local ev = events(boundary, { body }, limits)
  local last = ev[#ev]
  assert.are.equal("error", last[1], "expected an error, got " .. tostring(last[1]))
  return last[2]
end

local SAMPLE = body_of("XyZ", {
  { 'Content-Disposition: form-data; name="title"', body = "a\r\nb--XyZ\r" },
  { 'Content-Disposition: form-data; name="f"; filename="a.txt"',
    "Content-Type: text/plain", body = "\r\n-XyZ\r\n--Xy" .. ("z"):rep(40) },
}, "preamble\r\n--XyZnot\r\n", "epilogue --XyZ")

local SAMPLE_EVENTS = {
  { "part", "title", false, "text/plain" }, { "data", "a\r\nb--XyZ\r" }, { "end" },
  { "part", "f", "a.txt", "text/plain" }, { "data", "\r\n-XyZ\r\n--Xy" .. ("z"):rep(40) },
  { "end" }, { "done" },
}

describe("multipart parser", function()
  it("parses parts, keeping content that looks like a boundary but is not", function()
    local body = body_of("XyZ", {
      { 'Content-Disposition: form-data; name="title"', body = "a\r\nb--XyZ\r" },
      { 'Content-Disposition: form-data; name="f"; filename="a.txt"',
        "Content-Type: text/plain", body = "\r\n-XyZ\r\n--Xy" .. ("z"):rep(40) },
    })
    assert.are.same(SAMPLE_EVENTS, events("XyZ", { body }))
  end)

  it("refuses a delimiter line with other bytes after the boundary", function()
    assert.matches("malformed multipart boundary line", error_of("XyZ", SAMPLE))
    local body = "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--XyZ-ish\r\n--XyZ--"
    assert.matches("malformed multipart boundary line", error_of("XyZ", body))
  end)

  local small = body_of("b0", {
    { 'Content-Disposition: form-data; name="x"', body = "one\r" },
    { 'Content-Disposition: form-data; name="up"; filename="u.bin"',
      "Content-Type: application/octet-stream", body = "\0\r\n-\r\n--b" },
  }, "pre\r\n", "post")
  local small_events = {
    { "part", "x", false, "text/plain" }, { "data", "one\r" }, { "end" },
    { "part", "up", "u.bin", "application/octet-stream" }, { "data", "\0\r\n-\r\n--b" },
    { "end" }, { "done" },
  }

  it("gives the same events for every split point of a body", function()
    assert.are.same(small_events, events("b0", { small }))
    for i = 0, #small do
      assert.are.same(small_events, events("b0", { small:sub(1, i), small:sub(i + 1) }),
        "split at " .. i)
    end
  end)

  it("gives the same events when fed one byte at a time", function()
    local bytes = {}
    for i = 1, #small do bytes[i] = small:sub(i, i) end
    assert.are.same(small_events, events("b0", bytes))
  end)

  it("hands out content before the whole part has arrived", function()
    local p = multipart.parser("B")
    p:feed('--B\r\nContent-Disposition: form-data; name="f"\r\n\r\n' .. ("x"):rep(1000))
    assert.are.equal("part", (p:next()))
    local ev, data = p:next()
    assert.are.equal("data", ev)
    assert.is_true(#data >= 1000 - 5, "kept back " .. (1000 - #data) .. " bytes")
    assert.are.equal("more", p:next())
  end)

  it("accepts a body without preamble or with one, and ignores the epilogue", function()
    local part = { 'Content-Disposition: form-data; name="a"', body = "1" }
    local want = { { "part", "a", false, "text/plain" }, { "data", "1" }, { "end" }, { "done" } }
    assert.are.same(want, events("q", { body_of("q", { part }) }))
    assert.are.same(want, events("q", { body_of("q", { part }, "junk --q junk\r\n", "\r\n--q\r\nbroken") }))
  end)

  it("accepts transport padding after a boundary and an empty part", function()
    local body = "--q \t\r\nContent-Disposition: form-data; name=e\r\n\r\n\r\n--q-- \r\n"
    assert.are.same({ { "part", "e", false, "text/plain" }, { "end" }, { "done" } },
      events("q", { body }))
  end)

  it("accepts a body with no parts", function()
    assert.are.same({ { "done" } }, events("q", { "--q--\r\n" }))
  end)

  it("reports a missing final boundary and a body without any boundary", function()
    local cut = '--q\r\nContent-Disposition: form-data; name="a"\r\n\r\nsome data'
    assert.matches("ends before its final boundary", error_of("q", cut))
    assert.matches("ends before its final boundary", error_of("q", cut .. "\r\n--q"))
    assert.matches("ends before its final boundary",
      error_of("q", '--q\r\nContent-Disposition: form-data; name="a"\r\n'))
    assert.matches("no multipart boundary", error_of("q", "just some text"))
    assert.matches("no multipart boundary", error_of("q", ""))
  end)

  it("requires CRLF line ends in part headers and refuses injected lines", function()
    local function with_headers(h) return "--q\r\n" .. h .. "\r\n\r\nv\r\n--q--" end
    assert.matches("bare LF", error_of("q", with_headers(
      'Content-Disposition: form-data; name="a"\nContent-Disposition: form-data; name="b"')))
    assert.matches("control character", error_of("q", with_headers(
      'Content-Disposition: form-data; name="a"\rX: y')))
    assert.matches("repeated part header", error_of("q", with_headers(
      'Content-Disposition: form-data; name="a"\r\nContent-Disposition: form-data; name="b"')))
    assert.matches("folded", error_of("q", with_headers(
      'Content-Disposition: form-data;\r\n name="a"')))
    assert.matches("header name", error_of("q", with_headers(
      'Content Disposition: form-data; name="a"')))
    assert.matches("malformed part header line", error_of("q", with_headers("no colon here")))
  end)

  it("requires a form-data Content-Disposition with a name", function()
    local function with_cd(cd) return "--q\r\n" .. cd .. "\r\n\r\nv\r\n--q--" end
    assert.matches("without a Content%-Disposition", error_of("q", with_cd("Content-Type: text/plain")))
    assert.matches("without a Content%-Disposition", error_of("q", "--q\r\n\r\nv\r\n--q--"))
    assert.matches("not form%-data", error_of("q", with_cd('Content-Disposition: attachment; name="a"')))
    assert.matches("without a name", error_of("q", with_cd('Content-Disposition: form-data; filename="a"')))
    assert.matches("malformed Content%-Disposition",
      error_of("q", with_cd('Content-Disposition: form-data; name="unterminated')))
    assert.matches("malformed Content%-Disposition",
      error_of("q", with_cd('Content-Disposition: form-data; name="a"; name="b"')))
  end)

  it("bounds the headers of a part in count and bytes, and the number of parts", function()
    local many = { 'Content-Disposition: form-data; name="a"' }
    for i = 1, 5 do many[#many + 1] = "X-" .. i .. ": v" end
    local body = "--q\r\n" .. table.concat(many, "\r\n") .. "\r\n\r\nv\r\n--q--"
    assert.matches("too many part headers", error_of("q", body, { max_headers = 4 }))
    assert.are.equal("done", events("q", { body }, { max_headers = 6 })[4][1])
    local big = "--q\r\nContent-Disposition: form-data; name=\"a\"\r\nX: " .. ("h"):rep(300) .. "\r\n\r\nv\r\n--q--"
    assert.matches("part headers too large", error_of("q", big, { max_header_bytes = 200 }))
    -- exactly at the limit, arriving byte by byte: accepted; one less: refused
    local block = 'Content-Disposition: form-data; name="a"\r\n'
    local exact = "--q\r\n" .. block .. "\r\nv\r\n--q--"
    local bytes = {}
    for i = 1, #exact do bytes[i] = exact:sub(i, i) end
    assert.are.equal("done", events("q", bytes, { max_header_bytes = #block })[4][1])
    assert.matches("part headers too large", error_of("q", exact, { max_header_bytes = #block - 1 }))
    -- the limit holds before the end of the headers arrives
    local p = multipart.parser("q", { max_header_bytes = 200 })
    p:feed("--q\r\nX: " .. ("h"):rep(1000))
    local ev, msg = p:next()
    assert.is_nil(ev)
    assert.matches("part headers too large", msg)
    local three = body_of("q", {
      { 'Content-Disposition: form-data; name="a"', body = "1" },
      { 'Content-Disposition: form-data; name="b"', body = "2" },
      { 'Content-Disposition: form-data; name="c"', body = "3" },
    })
    assert.matches("too many parts", error_of("q", three, { max_parts = 2 }))
  end)

  it("decodes parameters: quoted, unquoted, escaped, and filename* (RFC 5987)", function()
    local function info(cd)
      local p = multipart.parser("q")
      p:feed("--q\r\nContent-Disposition: " .. cd .. "\r\nX-Extra:  spaced value \r\n\r\nv\r\n--q--")
      local ev, v = p:next()
      assert.are.equal("part", ev, v)
      return v
    end
    local v = info('FORM-DATA; Name=plain; filename="a \\"quoted\\" name.txt"')
    assert.are.equal("plain", v.name)
    assert.are.equal('a "quoted" name.txt', v.filename)
    assert.are.equal("spaced value", v.headers["x-extra"])
    assert.are.equal('FORM-DATA; Name=plain; filename="a \\"quoted\\" name.txt"', v.headers["content-disposition"])
    v = info("form-data; name=f; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt")
    assert.are.equal("€ rates.txt", v.filename)
    v = info("form-data; name=f; filename*=iso-8859-1'en'%A3%20x.txt")
    assert.are.equal("£ x.txt", v.filename)
    v = info("form-data; name=f; filename=\"fallback.txt\"; filename*=KOI8-R''%C1")
    assert.are.equal("fallback.txt", v.filename) -- unknown charset: the plain one
    v = info("form-data; name=f; filename=\"fallback.txt\"; filename*=UTF-8''%E2%8")
    assert.are.equal("fallback.txt", v.filename) -- broken escape: the plain one
    v = info('form-data; name="a"; filename=""')
    assert.are.equal("", v.filename)
  end)

  it("reads the boundary from the content type, quoted or not", function()
    assert.are.equal("abc", multipart.boundary("multipart/form-data; boundary=abc"))
    assert.are.equal("a b:c", multipart.boundary('Multipart/Form-Data ; charset=utf-8; boundary="a b:c"'))
    assert.are.equal(("x"):rep(70), multipart.boundary("multipart/form-data; boundary=" .. ("x"):rep(70)))
    local function refused(ct, pattern)
      local b, err = multipart.boundary(ct)
      assert.is_nil(b)
      assert.matches(pattern, err)
    end
    refused("text/plain; boundary=abc", "not multipart/form%-data")
    refused("multipart/mixed; boundary=abc", "not multipart/form%-data")
    refused("multipart/form-data", "valid boundary")
    refused("multipart/form-data; boundary=" .. ("x"):rep(71), "valid boundary")
    refused('multipart/form-data; boundary="ends in space "', "valid boundary")
    refused('multipart/form-data; boundary="a\\"b"', "valid boundary")
  end)

  it("raises on misuse, naming the argument", function()
    assert.has_error(function() multipart.parser() end,
      "bad argument #1 to 'parser' (string expected, got no value)")
    assert.has_error(function() multipart.parser("") end,
      "bad argument #1 to 'parser' (invalid multipart boundary)")
    assert.has_error(function() multipart.parser("q", 5) end,
      "bad argument #2 to 'parser' (table expected, got number)")
    assert.has_error(function() multipart.boundary(nil) end,
      "bad argument #1 to 'boundary' (string expected, got nil)")
    local p = multipart.parser("q")
    p:finish()
    assert.has_error(function() p:feed("x") end, "parser:feed() after parser:finish()")
  end)
end)

-- ---------------------------------------------------------------------
-- req:form() and req:parts() through the server

local BOUNDARY = "----tychoFormBoundary7MA4YWxkTrZu0gW"
local MP_TYPE = "multipart/form-data; boundary=" .. BOUNDARY

local function post(handler, body, ctype, extra)
  local opts = { method = "POST", body = body, headers = { ["Content-Type"] = ctype } }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(request(handler, opts))
end

-- Answers 400 with the message when the form is refused, else echoes it.
local seen_fields, seen_files
local function form_app(opts)
  return function(req)
    local fields, files = req:form(opts)
    if not fields then return 400, {}, files end
    seen_fields, seen_files = fields, files
    return "ok"
  end
end

describe("req:form()", function()
  it("decodes an urlencoded body like req.query: percent, plus, repeats", function()
    local r = post(form_app(), "a=1&b=hello+world%21&a=2&empty=&flag&%C3%A9=%E2%82%AC",
      "application/x-www-form-urlencoded; charset=UTF-8")
    assert.are.equal(200, r.status, r.body)
    assert.are.same({ a = { "1", "2" }, b = "hello world!", empty = "", flag = "", ["é"] = "€" },
      seen_fields)
    assert.are.same({}, seen_files)
  end)

  it("reads multipart fields and files, repeated names as lists", function()
    local body = body_of(BOUNDARY, {
      { 'Content-Disposition: form-data; name="title"', body = "Hello" },
      { 'Content-Disposition: form-data; name="tag"', body = "a" },
      { 'Content-Disposition: form-data; name="tag"', body = "b" },
      { 'Content-Disposition: form-data; name="doc"; filename="d.txt"',
        "Content-Type: text/plain", body = "line1\r\nline2" },
      { 'Content-Disposition: form-data; name="pics"; filename="1.png"',
        "Content-Type: image/png", body = "\137PNG\0one" },
      { 'Content-Disposition: form-data; name="pics"; filename="2.png"',
        "Content-Type: image/png", body = "\137PNG\0two" },
    })
    local r = post(form_app(), body, MP_TYPE)
    assert.are.equal(200, r.status, r.body)
    assert.are.same({ title = "Hello", tag = { "a", "b" } }, seen_fields)
    assert.are.equal("d.txt", seen_files.doc.filename)
    assert.are.equal("text/plain", seen_files.doc.content_type)
    assert.are.equal("line1\r\nline2", seen_files.doc.data)
    assert.are.equal(2, #seen_files.pics)
    assert.are.equal("2.png", seen_files.pics[2].filename)
    assert.are.equal("\137PNG\0two", seen_files.pics[2].data)
    assert.are.equal("image/png", seen_files.pics[1].headers["content-type"])
  end)

  it("returns nil, message for another content type or none", function()
    local r = post(form_app(), '{"a":1}', "application/json")
    assert.are.equal(400, r.status)
    assert.matches("not a form %(Content%-Type: application/json%)", r.body)
    r = assert(request(form_app(), { method = "POST", body = "a=1" }))
    assert.are.equal(400, r.status)
    assert.matches("Content%-Type: none", r.body)
    r = post(form_app(), "x", "multipart/form-data")
    assert.are.equal(400, r.status)
    assert.matches("valid boundary", r.body)
  end)

  it("returns nil, message for a malformed multipart body (a handler answers 400)", function()
    local cut = "--" .. BOUNDARY .. '\r\nContent-Disposition: form-data; name="a"\r\n\r\nno end'
    local r = post(form_app(), cut, MP_TYPE)
    assert.are.equal(400, r.status)
    assert.matches("malformed multipart body: multipart body ends before its final boundary", r.body)
    r = post(form_app(), "--" .. BOUNDARY .. "\r\nX: y\n\r\n\r\nv\r\n--" .. BOUNDARY .. "--", MP_TYPE)
    assert.are.equal(400, r.status)
    assert.matches("bare LF", r.body)
  end)

  it("bounds the form by max_bytes and by the server's body limit", function()
    local body = body_of(BOUNDARY, { { 'Content-Disposition: form-data; name="a"', body = ("x"):rep(5000) } })
    local r = post(form_app{ max_bytes = 4096 }, body, MP_TYPE)
    assert.are.equal(400, r.status)
    assert.matches("larger than max_bytes %(4096%)", r.body)
    r = post(form_app{ max_bytes = 4096 }, "a=" .. ("x"):rep(5000), "application/x-www-form-urlencoded")
    assert.are.equal(400, r.status)
    assert.matches("larger than max_bytes", r.body)
    r = post(form_app{ max_bytes = 8192 }, body, MP_TYPE)
    assert.are.equal(200, r.status, r.body)
    r = post(form_app(), body, MP_TYPE, { limits = { max_body_bytes = 2048 } })
    assert.are.equal(413, r.status)
  end)

  it("refuses an urlencoded body over max_bytes without waiting for the rest of it", function()
    -- The client announces 512 KiB (under the server's limit) and sends only
    -- 200 bytes: the answer must come from those, not after the whole body.
    local srv = assert(tycho.http.serve { port = 0, handler = form_app { max_bytes = 100 } })
    local function answer(framing, start)
      local conn = assert(tycho.net.connect("127.0.0.1", srv.port))
      conn:set_timeout(10)
      assert(conn:write("POST / HTTP/1.1\r\nHost: t\r\n" .. framing
        .. "Content-Type: application/x-www-form-urlencoded\r\n\r\n" .. start))
      local reply = ""
      for _ = 1, 100 do
        local data, err = conn:read()
        assert.is_nil(err)
        if not data then break end
        reply = reply .. data
        if reply:find("max_bytes %(100%)") then break end
      end
      conn:close()
      return reply
    end
    local field = "a=" .. ("x"):rep(198)
    assert.matches("^HTTP/1.1 400 .*larger than max_bytes %(100%)",
      answer("Content-Length: 524288\r\n", field))
    assert.matches("^HTTP/1.1 400 .*larger than max_bytes %(100%)",
      answer("Transfer-Encoding: chunked\r\n", "c8\r\n" .. field .. "\r\n"))
    srv:close()
  end)

  it("passes the part limits to the parser", function()
    local body = body_of(BOUNDARY, {
      { 'Content-Disposition: form-data; name="a"', "X-1: 1", "X-2: 2", body = "v" } })
    local r = post(form_app{ max_headers = 2 }, body, MP_TYPE)
    assert.are.equal(400, r.status)
    assert.matches("too many part headers", r.body)
    r = post(form_app{ max_headers = 3 }, body, MP_TYPE)
    assert.are.equal(200, r.status, r.body)
  end)

  it("raises on bad options, naming the argument", function()
    local errs = {}
    local r = post(function(req)
      errs[1] = select(2, pcall(req.form, req, 5))
      errs[2] = select(2, pcall(req.form, req, { max_bytes = -1 }))
      errs[3] = select(2, pcall(req.parts, req, { max_parts = 1.5 }))
      return "ok"
    end, "a=1", "application/x-www-form-urlencoded")
    assert.are.equal(200, r.status)
    assert.matches("bad argument #1 to 'form' %(table expected, got number%)", errs[1])
    assert.matches("bad argument #1 to 'form' %(field 'max_bytes' must be a positive integer, got %-1%)", errs[2])
    assert.matches("bad argument #1 to 'parts' %(field 'max_parts' must be a positive integer", errs[3])
  end)
end)

describe("req:parts()", function()
  local body = body_of(BOUNDARY, {
    { 'Content-Disposition: form-data; name="skip"; filename="s.bin"', body = ("s"):rep(3000) },
    { 'Content-Disposition: form-data; name="note"', body = "kept" },
    { 'Content-Disposition: form-data; name="file"; filename="f.bin"',
      "Content-Type: application/octet-stream", body = ("f"):rep(3000) },
  })

  it("streams parts; a part not read is skipped", function()
    local got = {}
    local r = post(function(req)
      local parts = assert(req:parts())
      for part in parts do
        got[#got + 1] = { part.name, part.filename or false, part.content_type }
        if part.name == "note" then got.note = assert(part:read_all()) end
        if part.name == "file" then
          local n = 0
          for chunk in part:chunks() do n = n + #chunk end
          got.file = n
          assert.is_nil(part:chunks()(part)) -- ended: stays ended
        end
      end
      assert.is_nil(parts.error)
      return "ok"
    end, body, MP_TYPE)
    assert.are.equal(200, r.status, r.body)
    assert.are.same({ "skip", "s.bin", "text/plain" }, got[1])
    assert.are.same({ "file", "f.bin", "application/octet-stream" }, got[3])
    assert.are.equal("kept", got.note)
    assert.are.equal(3000, got.file)
  end)

  it("ends the loop on a malformed body and says why in .error", function()
    local err, part_err, data
    local cut = body:sub(1, #body - 200)
    local r = post(function(req)
      local parts = assert(req:parts())
      for part in parts do
        if part.name == "file" then
          data, part_err = part:read_all()
        end
      end
      err = parts.error
      return "ok"
    end, cut, MP_TYPE)
    assert.are.equal(200, r.status, r.body)
    assert.is_nil(data)
    assert.matches("ends before its final boundary", part_err)
    assert.matches("ends before its final boundary", err)
  end)

  it("read_all bounds a part by max_bytes", function()
    local res
    post(function(req)
      for part in assert(req:parts()) do
        if part.name == "file" then res = { part:read_all(100) } end
      end
      return "ok"
    end, body, MP_TYPE)
    assert.is_nil(res[1])
    assert.matches('part "file" is larger than 100 bytes', res[2])
  end)

  it("raises when the body is read as multipart twice", function()
    local err
    local r = post(function(req)
      assert(req:parts())
      err = select(2, pcall(req.form, req))
      return "ok"
    end, body, MP_TYPE)
    assert.are.equal(200, r.status)
    assert.matches("already being read as multipart", err)
  end)

  it("returns nil, message when the request is not multipart", function()
    local res
    post(function(req)
      res = { req:parts() }
      return "ok"
    end, "a=1", "application/x-www-form-urlencoded")
    assert.is_nil(res[1])
    assert.matches("not multipart/form%-data", res[2])
  end)

  it("holds a large upload in the kernel until the handler reads it", function()
    -- The handler waits before reading; the client writes far more than
    -- socket buffers hold. With back-pressure the server stops reading, so
    -- the client's queue grows and the first read of the body is small.
    local total = 32 * 1024 * 1024
    local waiting, first, received = nil, nil, 0
    local srv = assert(tycho.http.serve{
      port = 0, max_body_bytes = total + 4096,
      handler = function(req)
        local co, tok = core.token()
        waiting = { co, tok }
        core.park()
        for part in assert(req:parts()) do
          for chunk in part:chunks() do
            first = first or #chunk
            received = received + #chunk
          end
        end
        return "got " .. received
      end,
    })
    local conn = assert(tycho.net.connect("127.0.0.1", srv.port))
    conn:set_limits{ write_high_water = total + 1024 * 1024 } -- writes queue, never wait
    local head = "--" .. BOUNDARY .. '\r\nContent-Disposition: form-data; name="big"; filename="big"\r\n\r\n'
    local tail = "\r\n--" .. BOUNDARY .. "--\r\n"
    conn:write(("POST / HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n")
      :format(MP_TYPE, #head + total + #tail))
    conn:write(head)
    local piece = ("u"):rep(1024 * 1024)
    for _ = 1, total // #piece do assert(conn:write(piece)) end
    assert(conn:write(tail))
    -- Wait until the transfer stalls (the client's queue stays the same
    -- for 10 looks in a row). A server without back-pressure reads it all.
    local last, same = -1, 0
    for _ = 1, 1000 do
      local q = conn:write_queue_size()
      same = (q == last and waiting) and same + 1 or 0
      last = q
      if same >= 10 then break end
      tycho.sleep(0.02)
    end
    assert.is_true(last > 0, "the server read the whole upload before the handler asked")
    core.wake(waiting[1], waiting[2])
    local reply = {}
    for _ = 1, 1000 do
      local data = conn:read()
      if not data then break end
      reply[#reply + 1] = data
    end
    conn:close()
    srv:close()
    assert.matches("got " .. total .. "$", table.concat(reply))
    assert.are.equal(total, received)
    assert.is_true(first <= 512 * 1024, "the first read held " .. first .. " bytes")
  end)
end)
