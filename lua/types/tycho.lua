---@meta
-- Generated from docs/api.md by scripts/gen-types: do not edit.
-- Point lua-language-server at lua/types (docs/editor.md).

---The global `tycho` (also `require "tycho"`): time, timers, tasks; every
---other module loads on first use as `tycho.fs`, `tycho.http`, ...
---Page: [tycho.md](tycho.md), [tasks.md](tasks.md).
---@class tycho
---@field version string
---@field uv table
tycho = {}

---Yields: no. `{tycho=, lua=, libuv=, llhttp=}` version strings.
---@return table
function tycho.versions() end

---Yields: no. Starts `fn(...)` as a new task on the next loop turn. An error in
---the task is reported on stderr unless someone `:join()`s it.
---@param fn function
---@param ... any
---@return tycho.Task
function tycho.spawn(fn, ...) end

---Yields: no. True when the caller runs inside a task (so it may await).
---@return boolean
function tycho.in_task() end

---Yields: yes. Suspends the task for `seconds` (fractions allowed); never
---returns early. Raises for a negative or NaN value.
---@param seconds number
function tycho.sleep(seconds) end

---Yields: no. Loop time in milliseconds, cached at the start of the loop turn.
---@return integer
function tycho.now() end

---Yields: no. A monotonic clock in nanoseconds.
---@return integer
function tycho.hrtime() end

---Yields: no. Runs `fn` as a task once, after `ms` milliseconds.
---@param ms number
---@param fn fun(timer: tycho.Timer)
---@return tycho.Timer
function tycho.set_timeout(ms, fn) end

---Yields: no. Runs `fn` as a task every `ms` milliseconds until `:stop()`.
---@param ms number
---@param fn fun(timer: tycho.Timer)
---@return tycho.Timer
function tycho.set_interval(ms, fn) end

---What `tycho.spawn` returns.
---@class tycho.Task
local Task = {}

---Yields: yes (until the task ends). Returns the task's results, or raises its
---error (`cancelled` when it was cancelled).
---@return any
function Task:join() end

---Yields: no. Cancels the task: its pending await raises `cancelled`, so
---`<close>` variables and `pcall` cleanups run.
function Task:cancel() end

---Yields: no. `"ready"`, `"running"`, `"waiting"`, `"done"`, `"failed"` or
---`"cancelled"`.
---@return string
function Task:status() end

---What `tycho.set_timeout` and `tycho.set_interval` return.
---@class tycho.Timer
local Timer = {}

---Yields: no. Stops the timer; its callback will not run again (ticks queued
---but not started are cancelled too).
function Timer:stop() end

---Yields: no. True while the timer is still due to fire.
---@return boolean
function Timer:is_active() end

---Yields: no. Lets the process exit even while this timer is pending.
---@return tycho.Timer
function Timer:unref() end

---Files through libuv's thread pool: the loop never blocks. Page: [fs.md](fs.md),
---[fs-watch.md](fs-watch.md).
---@class tycho.fs
tycho.fs = {}

---Yields: yes. The whole file. Fails: `nil, message, code` (`ENOENT`, ...).
---@param path string
---@return string?
---@return string?
---@return string?
function tycho.fs.read_file(path) end

---Yields: yes. Replaces `path` with `data`. `opts`: `atomic` (write a temporary
---and rename it over `path`), `mode`, `append`. Fails: `nil, message, code`.
---@param path string
---@param data string
---@param opts? table
---@return boolean?
---@return string?
---@return string?
function tycho.fs.write_file(path, data, opts) end

---Yields: yes. `{type=, size=, mode=, mtime={sec=, nsec=}, ...}`. Fails:
---`nil, message, code`.
---@param path string
---@return table?
---@return string?
---@return string?
function tycho.fs.stat(path) end

---Yields: yes. Like `stat`, not following a final symbolic link.
---@param path string
---@return table?
---@return string?
---@return string?
function tycho.fs.lstat(path) end

---Yields: yes. Names sorted, or with `{types = true}` `{name=, type=}` tables.
---Fails: `nil, message, code`.
---@param path string
---@param opts? table
---@return table?
---@return string?
---@return string?
function tycho.fs.readdir(path, opts) end

---Yields: yes. Creates a directory; `{recursive = true}` also its parents (an
---existing directory is then no error); `mode`. Fails: `nil, message, code`.
---@param path string
---@param opts? table
---@return boolean?
---@return string?
---@return string?
function tycho.fs.mkdir(path, opts) end

---Yields: yes. Removes a file. Fails: `nil, message, code`.
---@param path string
---@return boolean?
---@return string?
---@return string?
function tycho.fs.unlink(path) end

---Yields: yes. Removes an empty directory. Fails: `nil, message, code`.
---@param path string
---@return boolean?
---@return string?
---@return string?
function tycho.fs.rmdir(path) end

---Yields: yes. Renames `from` to `to`, replacing `to`. Fails: `nil, message, code`.
---@param from string
---@param to string
---@return boolean?
---@return string?
---@return string?
function tycho.fs.rename(from, to) end

---Yields: yes. Opens with an `io.open` mode (`"r"` default, `"w"`, `"a"`,
---`"r+"`, `"w+"`, `"a+"`, and `"x"` forms that fail if the file exists).
---Fails: `nil, message, code`.
---@param path string
---@param mode? string
---@return tycho.File?
---@return string?
---@return string?
function tycho.fs.open(path, mode) end

---Yields: no. Runs `fn(event, filename)` in a new task on each change (inotify):
---event `"change"`, `"rename"` or `"error"`. `opts.recursive`. Fails:
---`nil, message, code`.
---@param path string
---@param fn fun(event: string, filename: string)
---@param opts? table
---@return tycho.Watcher?
---@return string?
---@return string?
function tycho.fs.watch(path, fn, opts) end

---Yields: no. Polls `path` by `stat` every `interval` seconds and runs
---`fn(current, previous)` when it changed. Fails: `nil, message, code`.
---@param path string
---@param interval number
---@param fn fun(current: table, previous: table)
---@return tycho.Watcher?
---@return string?
---@return string?
function tycho.fs.poll(path, interval, fn) end

---What `tycho.fs.open` returns; `local f <close> = ...` closes it.
---@class tycho.File
local File = {}

---Yields: yes. Up to `n` bytes (default: the rest) from the position; nil at
---end of file. Fails: `nil, message, code`.
---@param n? integer
---@return string?
---@return string?
---@return string?
function File:read(n) end

---Yields: yes. Writes at the position (at the end in append mode).
---@param data string
---@return tycho.File?
---@return string?
---@return string?
function File:write(data) end

---Yields: for `"end"` only. Like `io` files: whence `"set"`, `"cur"` (default)
---or `"end"`; returns the new position.
---@param whence? string
---@param offset? integer
---@return integer?
---@return string?
---@return string?
function File:seek(whence, offset) end

---Yields: yes. Closes the file; idempotent. Using it later raises.
---@return boolean?
---@return string?
---@return string?
function File:close() end

---What `tycho.fs.watch` and `tycho.fs.poll` return.
---@class tycho.Watcher
local Watcher = {}

---Yields: no. Stops watching; idempotent.
function Watcher:stop() end

---Yields: no. Lets the process exit while this watcher is active.
---@return tycho.Watcher
function Watcher:unref() end

---lua-cjson with server defaults. Page: [json.md](json.md).
---@class tycho.json
---@field null lightuserdata
---@field empty_array string
tycho.json = {}

---Yields: no. JSON text. Raises on values JSON cannot hold (functions, NaN,
---inf, nesting deeper than 1000).
---@param value any
---@return string
function tycho.json.encode(value) end

---Yields: no. The value; integral numbers become integers. Fails:
---`nil, message` for invalid JSON (never raises on bad input).
---@param text string
---@return any
---@return string?
function tycho.json.decode(text) end

---The HTTP/1.1 server (in C), router, static files, client. Page:
---[http.md](http.md), [http-client.md](http-client.md),
---[operations.md](operations.md).
---@class tycho.http
---@field serves integer?
tycho.http = {}

---Yields: no. Starts a server. `opts`: `handler` (function or router,
---required), `host` (`"127.0.0.1"`), `port` (8080; 0 picks a free one),
---`backlog` and the limits `max_header_bytes`, `max_headers`,
---`max_body_bytes`, `max_connections`, `header_timeout`, `keepalive_timeout`,
---`body_timeout`, `cpu_limit_ms`, `memory_limit_mb`; `compression` (`true`
---or `{level=, min_length=, types=}`: gzip for clients that accept it,
---[http.md](http.md#compression)). Fails: `nil, message, code`
---(`EADDRINUSE`, ...).
---@param opts table
---@return tycho.HttpServer?
---@return string?
---@return string?
function tycho.http.serve(opts) end

---Yields: no. A new router (`tycho.http.router.new()`, see class
---Router). Return it from an app to serve it.
---@return tycho.Router
function tycho.http.router() end

---Yields: no. A handler serving the files under `dir` (see
---`tycho.http.static.new`).
---@param dir string
---@param opts? table
---@return function
function tycho.http.static(dir, opts) end

---Yields: no. CORS middleware for `app:use` (see `tycho.http.cors.new`).
---@param opts? table
---@return function
function tycho.http.cors(opts) end

---Yields: no. `app` as a `function(req, res)` when it is a function or
---callable (a router), else nil.
---@param app any
---@return function?
function tycho.http.as_handler(app) end

---Yields: no. Percent-decodes `s` (`+` stays `+`).
---@param s string
---@return string
function tycho.http.url_decode(s) end

---Yields: no. Decodes `a=1&b=x+y` into `{a="1", b="x y"}`; a repeated key
---gives a list.
---@param query string
---@return table
function tycho.http.query_parse(query) end

---Yields: yes. The HTTP client's `request` (`tycho.http.client.request`).
---@param opts {url: string, method?: string, headers?: table, body?: string|fun(): string?|tycho.Stream|tycho.File, timeout?: number, connect_timeout?: number, follow_redirects?: boolean|integer, stream?: boolean, max_body?: integer, max_header_bytes?: integer, decompress?: boolean}
---@return tycho.ClientResponse?
---@return string?
---@return string?
function tycho.http.request(opts) end

---Yields: yes. The HTTP client's `get` (`tycho.http.client.get`).
---@param url string
---@param opts? table
---@return tycho.ClientResponse?
---@return string?
---@return string?
function tycho.http.get(url, opts) end

---Yields: no. A Prometheus metrics handler (`tycho.http.metrics.handler`).
---@return function
function tycho.http.metrics() end

---Yields: no. A liveness handler (`tycho.http.health.live`).
---@return function
function tycho.http.live() end

---Yields: no. A readiness handler (`tycho.http.health.ready`).
---@param ready_check? fun(): boolean
---@return function
function tycho.http.ready(ready_check) end

---What `tycho.http.serve` returns.
---@class tycho.HttpServer
---@field port integer
---@field host string
---@field connections integer
---@field generation integer
local HttpServer = {}

---Yields: no. Stops accepting; requests in flight finish.
function HttpServer:close() end

---Yields: yes. Until the last connection has ended.
function HttpServer:wait_closed() end

---Yields: no. New requests go to `fn`; returns the new generation.
---@param fn function
---@return integer
function HttpServer:set_handler(fn) end

---Yields: no. `fn(remote, method, url, http_minor, status, bytes, ns,
---generation)` runs after every response (the access log); nil removes it.
---@param fn? function
function HttpServer:set_log(fn) end

---The `req` of a handler. Its fields are built lazily; a handler may add its
---own (`req.user = ...`).
---@class tycho.Request
---@field method string
---@field path string
---@field raw_path string
---@field url string
---@field query table
---@field headers table
---@field cookies table
---@field params table
---@field remote_addr string
---@field remote_port integer
---@field http_version string
---@field generation integer
local Request = {}

---Yields: no. One header, any case, or nil.
---@param name string
---@return string?
function Request:header(name) end

---Yields: yes. The whole body. Fails: `nil, message` (body too large, client
---gone).
---@return string?
---@return string?
function Request:body() end

---Yields: yes (each step). Iterates over body pieces as they arrive.
---@return function
function Request:chunks() end

---Yields: yes. The body decoded. Fails: `nil, message` for invalid JSON.
---@return any
---@return string?
function Request:json() end

---Yields: yes. The form in the body: `fields, files` for
---`multipart/form-data` (files by field name: `{filename=, content_type=,
---headers=, data=}`, a list when repeated), `fields, {}` for
---`application/x-www-form-urlencoded` (decoded like `req.query`; a repeated
---name gives a list). Options: `max_bytes`, `max_parts`, `max_headers`,
---`max_header_bytes` ([Forms](http.md#forms)). Fails: `nil, message` for
---another content type, a malformed body or one over `max_bytes`. Raises on
---bad options.
---@param opts? table
---@return table?
---@return table|string
function Request:form(opts) end

---Yields: no (its iterator yields). Streams a `multipart/form-data` body:
---`for part in parts do ... end` gives each `FormPart` as its headers
---arrive; a part not read is skipped. Options: `max_parts`, `max_headers`,
---`max_header_bytes`. Fails: `nil, message` when the request is not
---multipart or has no valid boundary.
---@param opts? table
---@return tycho.FormParts?
---@return string?
function Request:parts(opts) end

---Yields: no. Answers a WebSocket handshake. `opts`: `protocols`,
---`max_message`, `ping_interval`, `idle_timeout`, `permessage_deflate` (`true`,
---`false` (the default) or `{level=, threshold=, max_window_bits=,
---server_no_context_takeover=, client_no_context_takeover=}`: accept the
---client's compression offer; see [websocket.md](websocket.md)). Fails:
---answers 400/426 and returns `nil, message, status`.
---@param opts? table
---@return tycho.WebSocket?
---@return string?
---@return integer?
function Request:websocket(opts) end

---The iterator `req:parts()` returns; calling it yields until the next part
---(`nil` at the end or on a malformed body).
---@class tycho.FormParts
---@field error string?
local FormParts = {}

---One part of a multipart body, from `req:parts()`. Its content can be read
---only before the next part is asked for.
---@class tycho.FormPart
---@field name string
---@field filename string?
---@field content_type string
---@field headers table
---@field error string?
local FormPart = {}

---Yields: yes (each step). Iterates over the part's content as it arrives;
---memory stays bounded (back-pressure reaches the client). Ends early on a
---malformed body: check `part.error`.
---@return function
function FormPart:chunks() end

---Yields: yes. The part's whole content. Fails: `nil, message` for a malformed
---body or content over `max_bytes`.
---@param max_bytes? integer
---@return string?
---@return string?
function FormPart:read_all(max_bytes) end

---The `res` of a handler. Using it after the response ended raises
---`this request is over`.
---@class tycho.Response
---@field sent boolean
local Response = {}

---Yields: no. Sets the status.
---@param code integer
---@return tycho.Response
function Response:status(code) end

---Yields: no. Sets a header (a table sends one line per item). Raises for
---invalid names or values with CR, LF or NUL.
---@param name string
---@param value string|table
---@return tycho.Response
function Response:header(name, value) end

---Yields: no. Adds one `Set-Cookie` line (earlier ones stay). `expires` is
---epoch seconds (years 1601 to 9999); `same_site` is `"Strict"`, `"Lax"` or `"None"`. Raises for a
---name that is not a token, a value with characters cookies cannot carry
---(blank, `"`, `,`, `;`, `\`, controls, non-ASCII), a bad option,
---`same_site = "None"` or `partitioned` without `secure`, and `__Secure-` /
---`__Host-` names without what their prefix requires.
---@param name string
---@param value string
---@param opts? {max_age?: integer, expires?: integer, path?: string, domain?: string, secure?: boolean, http_only?: boolean, same_site?: string, partitioned?: boolean}
---@return tycho.Response
function Response:cookie(name, value, opts) end

---Yields: no. Adds a `Set-Cookie` line that deletes the cookie (empty value,
---`Max-Age=0`, an `Expires` in 1970); give the `path` and `domain` it was set
---with. Raises as `res:cookie`.
---@param name string
---@param opts? table
---@return tycho.Response
function Response:clear_cookie(name, opts) end

---Yields: no. Ends the response (Content-Type defaults to text/plain).
---@param body? string
function Response:send(body) end

---Yields: no. Ends the response with `value` as JSON.
---@param value any
---@param status? integer
function Response:json(value, status) end

---Yields: when the client is slow (over 256 KiB queued). Streams the body.
---@param chunk string
function Response:write(chunk) end

---Yields: no. Ends a streamed response.
---@param chunk? string
function Response:finish(chunk) end

---Yields: yes. Sends part of an open file with sendfile(2), then closes `fd`.
---@param fd integer
---@param offset integer
---@param length integer
function Response:send_file(fd, offset, length) end

---Yields: no. Redirects (302 unless given).
---@param location string
---@param status? integer
function Response:redirect(location, status) end

---Yields: no. Starts a Server-Sent Events stream ([sse.md](sse.md)).
---@param opts? table
---@return tycho.SSE
function Response:sse(opts) end

---Yields: no. `false`: never gzip this response; `true`: gzip it whenever the
---client accepts gzip, even on a server without `compression` or for a type
---or size it would skip ([http.md](http.md#compression)). Raises once the
---head is sent.
---@param on boolean
---@return tycho.Response
function Response:compress(on) end

---gzip, zlib and raw deflate (zlib, in C). Page: [http.md](http.md#tychozlib).
---Corrupt input returns `nil, message, "Z_DATA_ERROR"`, input that ends too
---early `"Z_BUF_ERROR"`, output above `max_size` `"Z_TOO_LARGE"`.
---@class tycho.zlib
---@field version string
tycho.zlib = {}

---Yields: no. `data` in gzip format; `level` 1 (fast) to 9 (small), default 6.
---@param data string
---@param level? integer
---@return string
function tycho.zlib.gzip(data, level) end

---Yields: no. Decodes gzip (several members back to back too). `max_size`
---bytes of output at most (none by default: set it for data from outside).
---Fails: `nil, message, code`.
---@param data string
---@param max_size? integer
---@return string?
---@return string?
---@return string?
function tycho.zlib.gunzip(data, max_size) end

---Yields: no. `format` `"zlib"` (default, RFC 1950) or `"raw"` (RFC 1951).
---@param data string
---@param level? integer
---@param format? string
---@return string
function tycho.zlib.deflate(data, level, format) end

---Yields: no. Decodes `"zlib"` data (default; raw deflate is recognised too)
---or `"raw"`. Fails: `nil, message, code`.
---@param data string
---@param max_size? integer
---@param format? string
---@return string?
---@return string?
---@return string?
function tycho.zlib.inflate(data, max_size, format) end

---Yields: no. An incremental coder: `kind` `"gzip"`, `"gunzip"`, `"deflate"`,
---`"inflate"`, `"deflate-raw"` or `"inflate-raw"`.
---@param kind string
---@param opts? {level?: integer, max_size?: integer}
---@return tycho.ZlibStream
function tycho.zlib.stream(kind, opts) end

---A `tycho.zlib.stream`; closed by `__gc` and `<close>` too.
---@class tycho.ZlibStream
local ZlibStream = {}

---Yields: no. Feeds `chunk`; returns the output ready so far (may be `""`).
---`flush` (compressing): end the output on a byte boundary, so the other side
---can decode all given so far. Fails: `nil, message, code` (the stream ends).
---@param chunk string
---@param flush? boolean
---@return string?
---@return string?
---@return string?
function ZlibStream:update(chunk, flush) end

---Yields: no. The last output; a decoder whose input stopped early fails with
---`Z_BUF_ERROR`. The stream then refuses more (`stream is finished`).
---@param chunk? string
---@return string?
---@return string?
---@return string?
function ZlibStream:finish(chunk) end

---Yields: no. Frees the zlib state now.
function ZlibStream:close() end

---Routes by method and path pattern (`/users/:id`, final `*` or `*name`), with
---middleware; 404, 405 with Allow, HEAD falls back to GET. Page:
---[http.md](http.md).
---@class tycho.http.router
---@field created integer?
local tycho_http_router = {}

---Yields: no. A new, empty router.
---@return tycho.Router
function tycho_http_router.new() end

---A router is also a handler: `router(req, res)`.
---@class tycho.Router
local Router = {}

---Yields: no. Adds a GET route. `Router:post`, `put`, `patch`, `delete`,
---`head` and `options` are the same for their methods.
---@param pattern string
---@param fn fun(req: tycho.Request, res: tycho.Response): any
---@return tycho.Router
function Router:get(pattern, fn) end

---Yields: no. Adds a POST route.
---@param pattern string
---@param fn fun(req: tycho.Request, res: tycho.Response): any
---@return tycho.Router
function Router:post(pattern, fn) end

---Yields: no. Adds a PUT route.
---@param pattern string
---@param fn fun(req: tycho.Request, res: tycho.Response): any
---@return tycho.Router
function Router:put(pattern, fn) end

---Yields: no. Adds a PATCH route.
---@param pattern string
---@param fn fun(req: tycho.Request, res: tycho.Response): any
---@return tycho.Router
function Router:patch(pattern, fn) end

---Yields: no. Adds a DELETE route.
---@param pattern string
---@param fn fun(req: tycho.Request, res: tycho.Response): any
---@return tycho.Router
function Router:delete(pattern, fn) end

---Yields: no. Adds a HEAD route.
---@param pattern string
---@param fn fun(req: tycho.Request, res: tycho.Response): any
---@return tycho.Router
function Router:head(pattern, fn) end

---Yields: no. Adds an OPTIONS route.
---@param pattern string
---@param fn fun(req: tycho.Request, res: tycho.Response): any
---@return tycho.Router
function Router:options(pattern, fn) end

---Yields: no. Adds a route for every method.
---@param pattern string
---@param fn fun(req: tycho.Request, res: tycho.Response): any
---@return tycho.Router
function Router:any(pattern, fn) end

---Yields: no. Adds a route for `method` (`"*"` for any).
---@param method string
---@param pattern string
---@param fn fun(req: tycho.Request, res: tycho.Response): any
---@return tycho.Router
function Router:route(method, pattern, fn) end

---Yields: no. A WebSocket route: `fn(ws, req)` runs after the handshake; the
---socket closes (1000) when `fn` returns, 1011 when it fails.
---@param pattern string
---@param fn fun(ws: tycho.WebSocket, req: tycho.Request): any
---@param opts? table
---@return tycho.Router
function Router:websocket(pattern, fn, opts) end

---Yields: no. Adds middleware; it calls `return next()` to go on.
---@param fn fun(req: tycho.Request, res: tycho.Response, next: function): any
---@return tycho.Router
function Router:use(fn) end

---Yields: no. The route's handler and params for `method` and `path`.
---@param method string
---@param path string
---@return function?
---@return table?
function Router:find(method, path) end

---Yields: as the handler does. Dispatches one request.
---@param req tycho.Request
---@param res tycho.Response
---@return any
function Router:handle(req, res) end

---Serves the files under a directory: ETag, Last-Modified, ranges, sendfile,
---no escaping the directory. Page: [http.md](http.md).
---@class tycho.http.static
---@field types table
local tycho_http_static = {}

---Yields: no. A handler `(req, res, next)`. `opts`: `index` (`"index.html"`,
---false for none), `max_age` (Cache-Control seconds), `fallthrough` (call
---`next()` instead of 404).
---@param dir string
---@param opts? table
---@return function
function tycho_http_static.new(dir, opts) end

---Set-Cookie lines (RFC 6265): `res:cookie` and `res:clear_cookie` are
---defined here; `req.cookies` is parsed in C. Page: [http.md](http.md#cookies).
---@class tycho.http.cookie
local tycho_http_cookie = {}

---Yields: no. The `Set-Cookie` value `res:cookie` would send, checked the
---same way (raises likewise).
---@param name string
---@param value string
---@param opts? table
---@return string
function tycho_http_cookie.serialize(name, value, opts) end

---Cross-Origin Resource Sharing middleware. Page: [http.md](http.md#cors).
---@class tycho.http.cors
local tycho_http_cors = {}

---Yields: no. A middleware `(req, res, next)`. Requests without `Origin` go
---on with `Vary: Origin` (or, for `origins = "*"`, `Access-Control-Allow-Origin: *`
---and `-Expose-Headers`); a preflight (`OPTIONS` with `Access-Control-Request-Method`) is
---answered `204` with the `Access-Control-Allow-*` headers (none when the
---origin is refused); other requests get `Access-Control-Allow-Origin` (`*`,
---or the origin reflected with `Vary: Origin`), `-Allow-Credentials`,
---`-Expose-Headers`, then go on. `origins`: `"*"` (default), one origin, a
---list or a predicate; `methods` (default `GET, HEAD, PUT, PATCH, POST,
---DELETE`); `headers` (default: the ones the preflight asks for); `max_age`
---(seconds). Raises for `credentials = true` with `origins = "*"` and for bad
---options.
---@param opts? {origins?: string|string[]|fun(origin: string): boolean, methods?: string|string[], headers?: string|string[], expose?: string|string[], credentials?: boolean, max_age?: integer}
---@return function
function tycho_http_cors.new(opts) end

---An HTTP/1.1 client with pooled keep-alive connections; `http://` only. Page:
---[http-client.md](http-client.md).
---@class tycho.http.client
---@field stats table
---@field USER_AGENT string
---@field TIMEOUT number
---@field CONNECT_TIMEOUT number
---@field MAX_BODY integer
---@field MAX_REDIRECTS integer
---@field MAX_IDLE_PER_HOST integer
---@field IDLE_TIMEOUT number
---@field ACCEPT_ENCODING string
local tycho_http_client = {}

---Yields: yes. `opts`: `url`, `method`, `headers`, `body`, `timeout` (30),
---`connect_timeout` (10), `follow_redirects`, `stream`, `max_body` (of the
---decoded body), `decompress` (default: send `Accept-Encoding: gzip, deflate`
---and decode such answers, unless `headers` set an Accept-Encoding or a
---Range: then the body comes as sent; true: decode always; false: neither). `body` is
---a string, or streamed: a function returning the next piece (nil at the end;
---it may await) or an object with `:read()` (a file, a stream); sent chunked
---unless `headers` give a Content-Length. Fails: `nil, message, code`
---(`ECONNREFUSED`, `ETIMEDOUT`, `EBODY` when a streamed body fails,
---`ECONTENTLENGTH` when it does not match its Content-Length, `EDECODE` for a
---corrupt gzip/deflate body, `ETOOLARGE` above `max_body`, ...).
---@param opts {url: string, method?: string, headers?: table, body?: string|fun(): string?|tycho.Stream|tycho.File, timeout?: number, connect_timeout?: number, follow_redirects?: boolean|integer, stream?: boolean, max_body?: integer, max_header_bytes?: integer, decompress?: boolean}
---@return tycho.ClientResponse?
---@return string?
---@return string?
function tycho_http_client.request(opts) end

---Yields: yes. GET `url`; `opts` as for `request`.
---@param url string
---@param opts? table
---@return tycho.ClientResponse?
---@return string?
---@return string?
function tycho_http_client.get(url, opts) end

---Yields: no. `{host=, port=, target=, authority=}`. Fails: `nil, message, code`.
---@param url string
---@return table?
---@return string?
---@return string?
function tycho_http_client.parse_url(url) end

---Yields: no. Closes every idle pooled connection.
function tycho_http_client.close_idle() end

---Yields: no. Idle pooled connections (for one `"host:port"`, or all).
---@param key? string
---@return integer
function tycho_http_client.idle_count(key) end

---What the client returns.
---@class tycho.ClientResponse
---@field status integer
---@field reason string
---@field headers table
---@field raw_headers table
---@field body string?
---@field url string
---@field version string
---@field content_encoding string?
local ClientResponse = {}

---Yields: yes. The next piece of a streamed body; nil at the end. Fails:
---`nil, message, code`.
---@return string?
---@return string?
---@return string?
function ClientResponse:read() end

---Yields: yes (each step). Iterates over the body's pieces; raises on a read
---error.
---@return function
function ClientResponse:chunks() end

---Yields: yes. The rest of a streamed body.
---@return string?
---@return string?
---@return string?
function ClientResponse:read_all() end

---Yields: no. Stops reading; the connection is pooled only if the body was read.
function ClientResponse:close() end

---Server-Sent Events (`require "tycho.http.sse"`, usually through
---`res:sse()`). Page: [sse.md](sse.md).
---@class tycho.http.sse
local tycho_http_sse = {}

---Yields: no. Starts the stream on `res`; `opts.heartbeat` seconds (15, false
---for none).
---@param res tycho.Response
---@param opts? table
---@return tycho.SSE
function tycho_http_sse.new(res, opts) end

---Yields: no. One event as wire text.
---@param ev table|string
---@return string
function tycho_http_sse.encode(ev) end

---@class tycho.SSE
local SSE = {}

---Yields: when the client reads slower than events come. `{event=, data=, id=,
---retry=}` or a string. Fails: `nil, message` once the client is gone.
---@param ev table|string
---@return boolean?
---@return string?
function SSE:send(ev) end

---Yields: as `send`. A comment line (keeps proxies from timing out).
---@param text string
---@return boolean?
---@return string?
function SSE:comment(text) end

---Yields: no. Ends the stream.
function SSE:close() end

---Liveness and readiness handlers. Page: [operations.md](operations.md).
---@class tycho.http.health
---@field draining boolean
local tycho_http_health = {}

---Yields: no. A handler answering 200 `ok` while the loop turns.
---@return function
function tycho_http_health.live() end

---Yields: no. 200 `ready`, or 503 while draining or when `ready_check()`
---returns false or raises.
---@param ready_check? fun(): boolean
---@return function
function tycho_http_health.ready(ready_check) end

---Prometheus metrics. Page: [operations.md](operations.md).
---@class tycho.http.metrics
---@field LAG_PROBE_MS integer
local tycho_http_metrics = {}

---Yields: no. A handler answering with the metrics text (it yields under
---`--workers`, to collect every worker's numbers).
---@return function
function tycho_http_metrics.handler() end

---Yields: no. This process's numbers.
---@return table
function tycho_http_metrics.snapshot() end

---Yields: under a supervisor. Every worker's snapshots.
---@return table
function tycho_http_metrics.collect() end

---Yields: no. Snapshots as Prometheus text.
---@param snaps table
---@param sup? table
---@return string
function tycho_http_metrics.render(snaps, sup) end

---Yields: no. Starts the loop-lag probe (done by `handler`).
function tycho_http_metrics.start_probe() end

---TCP, Unix-domain and UDP sockets. Connections are `Stream`s. Page:
---[net.md](net.md).
---@class tycho.net
---@field DEFAULT_BACKLOG integer
---@field MAX_PENDING_ACCEPTS integer
---@field MAX_DATAGRAMS integer
tycho.net = {}

---Yields: yes. `opts`: `timeout`, `nodelay` (true). Fails: `nil, message, code`.
---@param host string
---@param port integer
---@param opts? table
---@return tycho.Stream?
---@return string?
---@return string?
function tycho.net.connect(host, port, opts) end

---Yields: yes. Connects to a Unix socket. Fails: `nil, message, code`.
---@param path string
---@param opts? table
---@return tycho.Stream?
---@return string?
---@return string?
function tycho.net.connect_unix(path, opts) end

---Yields: only to resolve a host name. `opts`: `host`, `port` (0 picks one) or
---`path`, `backlog`, `handler` (`fun(conn)`, each in its own task), `nodelay`.
---Fails: `nil, message, code`.
---@param opts table
---@return tycho.NetServer?
---@return string?
---@return string?
function tycho.net.listen(opts) end

---Yields: no. A UDP socket, bound with `host`/`port`; `broadcast`, `reuse`.
---Fails: `nil, message, code`.
---@param opts? table
---@return tycho.Udp?
---@return string?
---@return string?
function tycho.net.udp(opts) end

---What `tycho.net.listen` returns.
---@class tycho.NetServer
---@field host string?
---@field port integer?
---@field path string?
local NetServer = {}

---Yields: yes. The next connection (server without `handler`). Fails:
---`nil, message, code`.
---@param timeout? number
---@return tycho.Stream?
---@return string?
---@return string?
function NetServer:accept(timeout) end

---Yields: no. Stops listening; idempotent.
function NetServer:close() end

---@class tycho.Udp
local Udp = {}

---Yields: yes. Sends one datagram. Fails: `nil, message, code`.
---@param data string
---@param host string
---@param port integer
---@return boolean?
---@return string?
---@return string?
function Udp:send(data, host, port) end

---Yields: yes. Data and sender `{host=, port=}`. Fails: `nil, message, code`.
---@param timeout? number
---@return string?
---@return table|string?
---@return string?
function Udp:receive(timeout) end

---Yields: no. Joins a multicast group.
---@param group string
---@param iface? string
---@return boolean?
---@return string?
---@return string?
function Udp:join(group, iface) end

---Yields: no. Leaves a multicast group.
---@param group string
---@param iface? string
---@return boolean?
---@return string?
---@return string?
function Udp:leave(group, iface) end

---Yields: no. `{host=, port=, family=}`.
---@return table
function Udp:local_address() end

---Yields: no. Allows sending to broadcast addresses.
---@param on boolean
---@return boolean?
---@return string?
---@return string?
function Udp:set_broadcast(on) end

---Yields: no. Whether own multicast datagrams come back.
---@param on boolean
---@return boolean?
---@return string?
---@return string?
function Udp:set_multicast_loop(on) end

---Yields: no. Multicast hop limit.
---@param ttl integer
---@return boolean?
---@return string?
---@return string?
function Udp:set_multicast_ttl(ttl) end

---Yields: no. Unicast hop limit.
---@param ttl integer
---@return boolean?
---@return string?
---@return string?
function Udp:set_ttl(ttl) end

---Yields: no. The interface multicast goes out on.
---@param iface string
---@return boolean?
---@return string?
---@return string?
function Udp:set_multicast_interface(iface) end

---Yields: no. Idempotent; a waiting `receive` fails with `closed`.
function Udp:close() end

---Buffered, back-pressured streams over TCP, pipes and child processes. Page:
---[net.md](net.md).
---@class tycho.stream
---@field Stream table
---@field READ_HIGH_WATER integer
---@field WRITE_HIGH_WATER integer
---@field MAX_LINE integer
tycho.stream = {}

---Yields: no. Wraps a luv stream handle (`"tcp"` or `"pipe"`).
---@param handle userdata
---@param kind string
---@return tycho.Stream
function tycho.stream.wrap(handle, kind) end

---Yields: no. A luv error string as `nil, message, code`.
---@param err string
---@return nil
---@return string
---@return string
function tycho.stream.fail(err) end

---Yields: yes. Parks the task until woken or `seconds` pass (`"timeout"`).
---@param co thread
---@param tok integer
---@param seconds? number
---@param on_cancel? function
---@return any
function tycho.stream.wait(co, tok, seconds, on_cancel) end

---Yields: no. Closes a stream's state (used by `Stream:close`).
---@param s table
function tycho.stream.close_state(s) end

---A TCP, Unix or pipe connection; `local c <close> = ...` closes it.
---@class tycho.Stream
local Stream = {}

---Yields: when nothing is buffered. Up to `n` bytes; nil at end. Fails:
---`nil, message, code`.
---@param n? integer
---@return string?
---@return string?
---@return string?
function Stream:read(n) end

---Yields: yes. Exactly `n` bytes, or `nil, message, "EOF"`.
---@param n integer
---@return string?
---@return string?
---@return string?
function Stream:read_exactly(n) end

---Yields: yes. The next line without `\n` (and `\r`).
---@return string?
---@return string?
---@return string?
function Stream:read_line() end

---Yields: yes (each step). `for line in conn:lines() do`.
---@return function
function Stream:lines() end

---Yields: over the write high-water mark (back-pressure).
---@param data string
---@return tycho.Stream?
---@return string?
---@return string?
function Stream:write(data) end

---Yields: no. Bytes queued for the kernel.
---@return integer
function Stream:write_queue_size() end

---Yields: yes. Ends the write side once queued data is out.
---@return boolean?
---@return string?
---@return string?
function Stream:shutdown() end

---Yields: no. Idempotent; a waiting reader gets an error.
function Stream:close() end

---Yields: no.
---@return boolean
function Stream:is_closed() end

---Yields: no. A timeout for each read, write wait and shutdown.
---@param seconds? number
---@return tycho.Stream
function Stream:set_timeout(seconds) end

---Yields: no. `{read_high_water=, write_high_water=, max_line=}`.
---@param opts table
---@return tycho.Stream
function Stream:set_limits(opts) end

---Yields: no. Nagle's algorithm off (true) or on.
---@param on boolean
---@return tycho.Stream
function Stream:set_nodelay(on) end

---Yields: no. TCP keep-alive probes after `delay` idle seconds (60).
---@param on boolean
---@param delay? number
---@return tycho.Stream
function Stream:set_keepalive(on, delay) end

---Yields: no. `{host=, port=, family=}` or `{path=}`.
---@return table?
function Stream:local_address() end

---Yields: no. The peer's address.
---@return table?
function Stream:remote_address() end

---Yields: no. Lets the process exit while the stream is open.
---@return tycho.Stream
function Stream:unref() end

---Yields: no. Undoes `unref`.
---@return tycho.Stream
function Stream:ref() end

---Name resolution on the thread pool. Page: [dns.md](dns.md).
---@class tycho.dns
tycho.dns = {}

---Yields: yes. Addresses; `opts.family` `"inet"` or `"inet6"`. Fails:
---`nil, message, code`.
---@param host string
---@param opts? table
---@return string[]?
---@return string?
---@return string?
function tycho.dns.resolve(host, opts) end

---Yields: yes. The host name for an address. Fails: `nil, message, code`.
---@param addr string
---@return string?
---@return string?
---@return string?
function tycho.dns.reverse(addr) end

---Yields: no. True for a numeric IPv4 or IPv6 address.
---@param host string
---@return boolean
function tycho.dns.is_ip(host) end

---Child processes and this process. Page: [process.md](process.md).
---@class tycho.process
---@field env table
---@field pid integer
tycho.process = {}

---Yields: no. Starts `cmd` (searched in PATH). `opts`: `env`, `cwd`, `stdin`,
---`stdout`, `stderr` (`"pipe"`, `"inherit"`, `"ignore"`). Fails:
---`nil, message, code` (`ENOENT`).
---@param cmd string
---@param args? string[]
---@param opts? table
---@return tycho.Process?
---@return string?
---@return string?
function tycho.process.spawn(cmd, args, opts) end

---Yields: yes. Runs to completion: stdout, stderr, exit code (and signal
---name). `opts.input`, `opts.timeout`. Fails: `nil, message, code`.
---@param cmd string
---@param args? string[]
---@param opts? table
---@return string?
---@return string?
---@return integer|string?
---@return string?
function tycho.process.exec(cmd, args, opts) end

---Yields: no. The working directory.
---@return string
function tycho.process.cwd() end

---Yields: no. Changes it. Fails: `nil, message, code`.
---@param path string
---@return boolean?
---@return string?
---@return string?
function tycho.process.chdir(path) end

---Yields: no. Ends the process cleanly, like `os.exit`.
---@param code? integer|boolean
function tycho.process.exit(code) end

---What `spawn` returns.
---@class tycho.Process
---@field pid integer
---@field stdin tycho.Stream?
---@field stdout tycho.Stream?
---@field stderr tycho.Stream?
local Process = {}

---Yields: unless it already exited. Exit code (128 + n after a signal) and
---signal name. Fails: `nil, message, "ETIMEDOUT"`.
---@param timeout? number
---@return integer?
---@return string?
---@return string?
function Process:wait(timeout) end

---Yields: no. Sends a signal (`"SIGTERM"`). Fails: `nil, message, "ESRCH"`.
---@param sig? string|integer
---@return boolean?
---@return string?
---@return string?
function Process:kill(sig) end

---Yields: no.
---@return boolean
function Process:is_running() end

---Yields: no. Closes the pipes (the child keeps running).
function Process:close() end

---POSIX signals. Page: [signal.md](signal.md).
---@class tycho.signal
tycho.signal = {}

---Yields: no. Runs `fn(name)` in a task at each delivery until `:stop()`.
---@param sig string|integer
---@param fn fun(name: string)
---@return tycho.SignalHandler
function tycho.signal.on(sig, fn) end

---Yields: yes. The next delivery's name. Fails: `nil, message, "ETIMEDOUT"`.
---@param sig string|integer
---@param timeout? number
---@return string?
---@return string?
---@return string?
function tycho.signal.wait(sig, timeout) end

---Yields: no. Sends a signal (default: to this process). Fails:
---`nil, message, code`.
---@param pid? integer
---@param sig? string|integer
---@return boolean?
---@return string?
---@return string?
function tycho.signal.kill(pid, sig) end

---Yields: no. `"SIGUSR1"` for `"usr1"`, `10`, ...; nil if unknown.
---@param sig string|integer
---@return string?
function tycho.signal.name(sig) end

---Yields: no. The signal's number here, or nil.
---@param sig string|integer
---@return integer?
function tycho.signal.number(sig) end

---Yields: no. Signal handles open (for leak checks).
---@return integer
function tycho.signal.open_handles() end

---@class tycho.SignalHandler
local SignalHandler = {}

---Yields: no. Idempotent.
function SignalHandler:stop() end

---Values that survive hot reload. The module is callable. Page:
---[hot-reload.md](hot-reload.md).
---@class tycho.state
---@overload fun(name: string, init?: fun(): any): any
tycho.state = {}

---Yields: when `init` does. Same as calling `tycho.state`.
---@param name string
---@param init? fun(): any
---@return any
function tycho.state.get(name, init) end

---Yields: no.
---@param name string
---@return boolean
function tycho.state.has(name) end

---Yields: no. The next call runs `init` again.
---@param name string
function tycho.state.forget(name) end

---Yields: no. True while the calling task runs an `init`.
---@return boolean
function tycho.state.building() end

---Hot reload of an app inside the running process. Page:
---[hot-reload.md](hot-reload.md).
---@class tycho.reload
---@field DEBOUNCE_MS integer
tycho.reload = {}

---Yields: yes. Reloads the process's app (the REPL's `.reload`). Fails:
---`nil, message` (the old code keeps serving).
---@return boolean?
---@return string?
function tycho.reload.reload() end

---Yields: no. A reloader for the app at `path`; `opts`: `args`, `log`.
---@param path string
---@param opts? table
---@return tycho.Reloader
function tycho.reload.new(path, opts) end

---Yields: yes. Loads the app of `tycho run`; its handler and an exit code.
---@param path string
---@param args? table
---@return any
---@return integer
function tycho.reload.start(path, args) end

---Yields: no. Reload on SIGHUP, and on each save with `watch`.
---@param server tycho.HttpServer
---@param watch? boolean
function tycho.reload.serve(server, watch) end

---@class tycho.Reloader
local Reloader = {}

---Yields: yes. Loads the app the first time: its handler (nil for a plain
---script). Fails: `nil, message`.
---@return any
---@return string?
function Reloader:load() end

---Yields: yes. Loads again and swaps the handler. Fails: `nil, message`.
---@return boolean?
---@return string?
function Reloader:reload() end

---Yields: no. Serves the app on `server`.
---@param server tycho.HttpServer
function Reloader:attach(server) end

---Yields: no. Reloads on every save of the app or its modules.
---@return boolean
function Reloader:watch() end

---Yields: no. Watches `names` in `dir` (used by `watch`).
---@param dir string
---@param names table
function Reloader:watch_dir(dir, names) end

---Yields: no. Watches these files (used by `watch`).
---@param files table
function Reloader:watch_files(files) end

---Yields: no. Schedules a debounced reload.
function Reloader:changed() end

---Yields: no. Reloads on SIGHUP.
function Reloader:take_sighup() end

---Yields: no. Stops watching; idempotent.
function Reloader:close() end

---The error and access logs of `tycho run`. Page: [operations.md](operations.md).
---@class tycho.log
---@field LEVELS table
---@field ACCESS_FLUSH_MS integer
tycho.log = {}

---Yields: no. Writes a line at level debug (`string.format` arguments).
---@param fmt string
---@param ... any
function tycho.log.debug(fmt, ...) end

---Yields: no. Level info.
---@param fmt string
---@param ... any
function tycho.log.info(fmt, ...) end

---Yields: no. Level warn.
---@param fmt string
---@param ... any
function tycho.log.warn(fmt, ...) end

---Yields: no. Level error.
---@param fmt string
---@param ... any
function tycho.log.error(fmt, ...) end

---Yields: no. `"debug"`, `"info"`, `"warn"` or `"error"`. Fails:
---`nil, message` for another name.
---@param name string
---@return boolean?
---@return string?
function tycho.log.set_level(name) end

---Yields: no. The current level.
---@return string
function tycho.log.level() end

---Yields: no. Names the writer in each line (`"worker 2"`).
---@param name string
function tycho.log.set_source(name) end

---Yields: no. A line as the log writes it.
---@param level string
---@param msg string
---@return string
function tycho.log.format(level, msg) end

---Yields: no. Starts the access log into `path` (`"-"`: stdout); returns an
---object with `flush()` and `close()`. Fails: `nil, message`.
---@param server tycho.HttpServer
---@param path string
---@param worker? integer|string
---@return table?
---@return string?
function tycho.log.access(server, path, worker) end

---Yields: no. One access log line.
---@param remote string
---@param method string
---@param url string
---@param minor integer
---@param status integer
---@param bytes integer
---@param ns integer
---@param gen integer
---@param worker? integer|string
---@return string
function tycho.log.access_line(remote, method, url, minor, status, bytes, ns, gen, worker) end

---CPU-bound Lua off the loop, and the loop watchdog. Page: [thread.md](thread.md).
---@class tycho.thread
tycho.thread = {}

---Yields: yes. Runs `fn(...)` in a worker Lua state on the thread pool; returns
---its results. Raises the thread's error, or for values that cannot be copied.
---@param fn function|string
---@param ... any
---@return any
function tycho.thread.run(fn, ...) end

---Yields: no. Threads in libuv's pool.
---@return integer
function tycho.thread.pool_size() end

---Yields: no. `{running=, idle_states=}`.
---@return table
function tycho.thread.stats() end

---Yields: no. Drops pooled worker states (after a code reload).
function tycho.thread.reset() end

---Yields: no. `{ms = N}` starts the loop watchdog (0 stops it). Fails:
---`nil, message, code`.
---@param opts table
---@return boolean?
---@return string?
---@return string?
function tycho.thread.watchdog(opts) end

---Yields: no. `{ms=, reports=, last=}`.
---@return table
function tycho.thread.watchdog_status() end

---WebSocket server and client. Page: [websocket.md](websocket.md).
---@class tycho.ws
tycho.ws = {}

---Yields: yes. Connects to `ws://host[:port]/path`. `opts`: `protocols`,
---`headers`, `timeout`, `max_message`, `ping_interval`, `idle_timeout`,
---`permessage_deflate` (`true` (the default: offered), `false`, or a table as
---for `req:websocket`). Fails: `nil, message, code` (`EPROTO` when the
---server's answer to our compression offer breaks RFC 7692).
---@param url string
---@param opts? table
---@return tycho.WebSocket?
---@return string?
---@return string?
function tycho.ws.connect(url, opts) end

---Yields: no. What `req:websocket()` calls. Fails: `nil, message, status`.
---@param req tycho.Request
---@param opts? table
---@return tycho.WebSocket?
---@return string?
---@return integer?
function tycho.ws.upgrade(req, opts) end

---Yields: no. The `Sec-WebSocket-Accept` value for a client key.
---@param key string
---@return string
function tycho.ws.accept_key(key) end

---@class tycho.WebSocket
---@field protocol string?
---@field extensions string?
---@field state string
local WebSocket = {}

---Yields: yes. `data, "text"|"binary"`. Fails: `nil, "closed", code, reason`.
---@return string?
---@return string?
---@return integer?
---@return string?
function WebSocket:receive() end

---Yields: when the peer reads slowly. Fails: `nil, "closed", code, reason`.
---@param data string
---@param kind? string
---@return boolean?
---@return string?
---@return integer?
---@return string?
function WebSocket:send(data, kind) end

---Yields: yes. Seconds until the pong.
---@param data? string
---@return number?
---@return string?
function WebSocket:ping(data) end

---Yields: yes (until the peer answers or a timeout).
---@param code? integer
---@param reason? string
---@return boolean
function WebSocket:close(code, reason) end

---Helpers for your own specs. Page: [getting-started.md](getting-started.md).
---@class tycho.test
tycho.test = {}

---Yields: yes. Runs one request through `app` over an in-process socket pair;
---returns `{status=, headers=, body=}` (repeated headers joined with `, `,
---except `set-cookie`: a list, one item per line). `opts`: `method`, `path`,
---`query`, `headers`, `body` (a table is sent as JSON), `limits`. Raises when
---`app` is not a handler.
---@param app function|table
---@param opts? table
---@return table?
---@return string?
function tycho.test.request(app, opts) end

---The Lua state's memory cap. Page: [security.md](security.md).
---@class tycho.memory
tycho.memory = {}

---Yields: no. Caps the Lua heap (nil: no cap). Allocations over it fail with
---`not enough memory`.
---@param bytes? integer
function tycho.memory.set_limit(bytes) end

---Yields: no. `{limit=, used=, refused=}`.
---@return table
function tycho.memory.stats() end

return tycho
