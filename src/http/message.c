/* message.c: one request and its response as Lua sees them. Owns ty_req
 * structs (recycled through a free list), the `req` and `res` objects given
 * to handlers (fields built lazily, from the bytes the parser kept),
 * running the handler as a task, and response framing: status line, Date,
 * Content-Type/Length or chunked encoding, Connection.
 *
 * Lua objects are small boxes {ty_req *, id}. A ty_req is reused by later
 * requests, so every access compares the box's id with the request's: a
 * handler that keeps `res` after its request ended gets a clear error, never
 * another request's response.
 */
#include "core/alloc.h"
#include "core/json.h"
#include "core/limits.h"
#include "http/http.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

#define REQ_MT "tycho.http.request"
#define RES_MT "tycho.http.response"

typedef struct {
  ty_req *r;
  uint64_t id;
} box;

static uint64_t last_id;
static ty_req *free_reqs;
static int return_hook_ref = LUA_NOREF; /* Lua: respond from return values */

/* ---------------------------------------------------------------------- */
/* ty_req life cycle                                                      */

ty_req *ty_req_new(ty_conn *c) {
  ty_req *r = free_reqs;
  if (r) {
    free_reqs = r->next_free;
  } else {
    r = calloc(1, sizeof *r);
    if (!r)
      return NULL;
  }
  ty_buf head = r->head, body = r->body, rhead = r->rhead;
  ty_span *hdrs = r->hdrs;
  size_t cap = r->hdrs_cap;
  memset(r, 0, sizeof *r);
  r->head = head, r->body = body, r->rhead = rhead;
  r->head.len = r->body.len = r->rhead.len = 0;
  r->hdrs = hdrs;
  r->hdrs_cap = cap;
  r->id = ++last_id;
  r->conn = c;
  r->status = 200;
  r->ref_req = r->ref_res = LUA_NOREF;
  r->file_fd = -1;
  r->start_ns = uv_hrtime();
  return r;
}

/* Big buffers are dropped rather than kept on the free list. */
static void shrink(ty_buf *b) {
  if (b->cap > 64 * 1024)
    ty_buf_free(b);
}

void ty_req_free(ty_req *r) {
  ty_gzip_end(r); /* connection gone mid-stream */
  if (r->file_fd >= 0)
    close(r->file_fd); /* connection gone mid-file */
  r->file_fd = -1;
  r->id = 0;
  r->conn = NULL;
  r->task = NULL;
  shrink(&r->head);
  shrink(&r->body);
  shrink(&r->rhead);
  r->next_free = free_reqs;
  free_reqs = r;
}

/* ---------------------------------------------------------------------- */
/* Boxes                                                                  */

/* The two metatables, compared by address: every method call checks its
 * box, and luaL_checkudata's registry lookup by name costs more than the
 * rest of a typical call. */
static const void *req_mt, *res_mt;
static int req_mt_ref = LUA_NOREF, res_mt_ref = LUA_NOREF;

static box *check_box(lua_State *L, int idx, const char *mt) {
  /* "tycho.http.request" and "tycho.http.response" differ at [13] */
  const void *want = mt[13] == 'q' ? req_mt : res_mt;
  box *b = lua_touserdata(L, idx);
  if (b && lua_getmetatable(L, idx)) {
    const void *got = lua_topointer(L, -1);
    lua_pop(L, 1);
    if (got == want)
      return b;
  }
  return luaL_checkudata(L, idx, mt); /* raises the standard message */
}

static ty_req *check_live(lua_State *L, int idx, const char *mt) {
  box *b = check_box(L, idx, mt);
  if (!b->r || b->r->id != b->id)
    luaL_error(L, "this request is over (its response was already sent)");
  return b->r;
}

ty_req *ty_req_check(lua_State *L, int idx) {
  return check_live(L, idx, REQ_MT);
}

static void push_box(lua_State *L, ty_req *r, const char *mt) {
  int is_req = mt[13] == 'q';
  /* only req keeps a store (cached and user-set fields) */
  box *b = lua_newuserdatauv(L, sizeof *b, is_req ? 1 : 0);
  b->r = r;
  b->id = r->id;
  lua_rawgeti(L, LUA_REGISTRYINDEX, is_req ? req_mt_ref : res_mt_ref);
  lua_setmetatable(L, -2);
}

/* The box's uservalue table: cached fields and user-set fields. */
static int push_store(lua_State *L, int idx) {
  if (lua_getiuservalue(L, idx, 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, 1);
  }
  return lua_gettop(L);
}

/* ---------------------------------------------------------------------- */
/* Request fields                                                         */

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) onto the stack; '+' is a space when plus. */
void ty_url_decode(lua_State *L, const char *s, size_t n, int plus) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    int ch = (unsigned char)s[i];
    if (ch == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
        hexval(s[i + 2]) >= 0) {
      ch = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
      i += 2;
    } else if (ch == '+' && plus) {
      ch = ' ';
    }
    luaL_addchar(&b, (char)ch);
  }
  luaL_pushresult(&b);
}

static size_t path_len(ty_req *r) {
  const char *q = memchr(r->head.p, '?', r->url_len);
  return q ? (size_t)(q - r->head.p) : r->url_len;
}

/* Adds key=value to the query table t; a repeated key becomes a list. */
static void query_add(lua_State *L, int t) {
  lua_pushvalue(L, -2);
  int type = lua_rawget(L, t);
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    lua_rawset(L, t);
  } else if (type == LUA_TTABLE) {
    lua_insert(L, -2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 2);
  } else {
    lua_createtable(L, 2, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 2);
    lua_rawset(L, t);
  }
}

/* Parses a query string into a new table on the stack. */
void ty_query_parse(lua_State *L, const char *s, size_t n) {
  lua_newtable(L);
  int t = lua_gettop(L);
  size_t i = 0;
  while (i < n) {
    size_t end = i;
    while (end < n && s[end] != '&')
      end++;
    size_t eq = i;
    while (eq < end && s[eq] != '=')
      eq++;
    if (end > i) {
      ty_url_decode(L, s + i, eq - i, 1);
      if (eq < end)
        ty_url_decode(L, s + eq + 1, end - eq - 1, 1);
      else
        lua_pushliteral(L, "");
      query_add(L, t);
    }
    i = end + 1;
  }
}

static void push_headers(lua_State *L, ty_req *r) {
  lua_createtable(L, 0, (int)r->nhdrs);
  int t = lua_gettop(L);
  char name[256];
  for (size_t i = 0; i < r->nhdrs; i++) {
    ty_span *s = &r->hdrs[i];
    size_t n = s->name_len < sizeof name ? s->name_len : sizeof name - 1;
    for (size_t k = 0; k < n; k++) {
      char ch = r->head.p[s->name + k];
      name[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    lua_pushlstring(L, name, n);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, t) == LUA_TSTRING) { /* repeated: join with ", " */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, r->head.p + s->value, s->value_len);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, r->head.p + s->value, s->value_len);
    }
    lua_rawset(L, t);
  }
}

/* req:header(name) -> value (any case; repeated joined) or nil */
static int req_header(lua_State *L) {
  ty_req *r = check_live(L, 1, REQ_MT);
  size_t n;
  const char *name = luaL_checklstring(L, 2, &n);
  int found = 0;
  for (size_t i = 0; i < r->nhdrs; i++) {
    ty_span *s = &r->hdrs[i];
    if (s->name_len != n || strncasecmp(r->head.p + s->name, name, n) != 0)
      continue;
    if (found)
      lua_pushliteral(L, ", ");
    lua_pushlstring(L, r->head.p + s->value, s->value_len);
    found += found ? 2 : 1;
  }
  if (!found)
    lua_pushnil(L); /* one value either way: tostring(req:header(x)) works */
  else
    lua_concat(L, found);
  return 1;
}

/* Cached computed fields: built once per request, kept in the store. */
static int cached(lua_State *L, ty_req *r, const char *key, size_t klen) {
  int store = push_store(L, 1);
  lua_pushlstring(L, key, klen);
  if (lua_rawget(L, store) != LUA_TNIL)
    return 1;
  lua_pop(L, 1);
  size_t plen = path_len(r);
  if (strcmp(key, "query") == 0)
    ty_query_parse(L, r->head.p + plen + (plen < r->url_len),
                   r->url_len - plen - (plen < r->url_len));
  else if (strcmp(key, "headers") == 0)
    push_headers(L, r);
  else if (strcmp(key, "params") == 0)
    lua_newtable(L);
  else if (strcmp(key, "cookies") == 0)
    ty_cookies_push(L, r); /* cookie.c */
  else
    return 0;
  lua_pushlstring(L, key, klen);
  lua_pushvalue(L, -2);
  lua_rawset(L, store);
  return 1;
}

/* req.path: decoded only when the raw path has an escape. */
static int push_path(lua_State *L, ty_req *r) {
  size_t n = path_len(r);
  if (memchr(r->head.p, '%', n))
    ty_url_decode(L, r->head.p, n, 0);
  else
    lua_pushlstring(L, r->head.p, n);
  return 1;
}

static int push_remote(lua_State *L, ty_req *r, int want_port) {
  char buf[64];
  int port;
  ty_conn_remote(r->conn, buf, sizeof buf, &port);
  if (want_port)
    lua_pushinteger(L, port);
  else
    lua_pushstring(L, buf);
  return 1;
}

#define KEY_IS(lit) (klen == sizeof(lit) - 1 && memcmp(key, lit, klen) == 0)

/* Fields computed from the request's bytes; 0 when key is not one. */
static int computed(lua_State *L, ty_req *r, const char *key, size_t klen) {
  if (KEY_IS("path"))
    return push_path(L, r);
  if (KEY_IS("method")) {
    lua_pushstring(L, llhttp_method_name((llhttp_method_t)r->method));
    return 1;
  }
  if (KEY_IS("url") || KEY_IS("raw_path")) {
    lua_pushlstring(L, r->head.p, klen == 3 ? r->url_len : path_len(r));
    return 1;
  }
  if (KEY_IS("generation")) {
    lua_pushinteger(L, r->generation);
    return 1;
  }
  if (KEY_IS("http_version")) {
    lua_pushstring(L, r->http_minor ? "1.1" : "1.0");
    return 1;
  }
  if (KEY_IS("remote_addr"))
    return push_remote(L, r, 0);
  if (KEY_IS("remote_port"))
    return push_remote(L, r, 1);
  return 0;
}

static int req_index(lua_State *L) {
  ty_req *r = check_live(L, 1, REQ_MT);
  size_t klen;
  const char *key = luaL_checklstring(L, 2, &klen);
  if (computed(L, r, key, klen))
    return 1;
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) /* methods */
    return 1;
  lua_pop(L, 1);
  if (cached(L, r, key, klen))
    return 1;
  int store = push_store(L, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, store);
  return 1;
}

static int req_newindex(lua_State *L) {
  check_live(L, 1, REQ_MT);
  int store = push_store(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, store);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Request body                                                           */

static void cancel_body_wait(void *ud) { ((ty_req *)ud)->body_tok = 0; }

static int body_k(lua_State *L, int status, lua_KContext ctx);

/* req:body() -> the whole body (awaits it), or nil, message */
static int req_body(lua_State *L) {
  ty_req *r = check_live(L, 1, REQ_MT);
  lua_settop(L, 1);
  if (r->body_done) {
    lua_pushlstring(L, r->body.p ? r->body.p : "", r->body.len);
    return 1;
  }
  if (r->body_read > 0)
    return luaL_error(L, "req:body() after req:chunks() started");
  r->wait_all = 1;
  r->body_tok = ty_task_prepare(L);
  ty_conn_body_taken(r->conn); /* reading may have stopped for chunks() */
  return ty_task_park_k(L, cancel_body_wait, r, body_k, 0);
}

static int body_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return req_body(L);
}

/* The chunk iterator: returns what arrived since the last call, waits when
 * nothing did, nil at the end. The consumed bytes are dropped, so a large
 * upload does not stay in memory. */
static int chunks_k(lua_State *L, int status, lua_KContext ctx);

static int chunks_iter(lua_State *L) {
  ty_req *r = check_live(L, lua_upvalueindex(1), REQ_MT);
  if (r->body.len > 0) {
    lua_pushlstring(L, r->body.p, r->body.len);
    r->body_read += r->body.len;
    r->body.len = 0;
    ty_conn_body_taken(r->conn);
    return 1;
  }
  if (r->body_done)
    return 0;
  lua_settop(L, 0);
  r->wait_all = 0;
  r->body_tok = ty_task_prepare(L);
  return ty_task_park_k(L, cancel_body_wait, r, chunks_k, 0);
}

static int chunks_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return chunks_iter(L);
}

/* req:chunks() -> iterator over body pieces as they arrive */
static int req_chunks(lua_State *L) {
  check_live(L, 1, REQ_MT);
  lua_settop(L, 1);
  lua_pushcclosure(L, chunks_iter, 1);
  return 1;
}

/* More body arrived, or all of it: wake a reader parked on it. */
void ty_req_body_event(ty_req *r) {
  if (!r->body_tok || !r->task)
    return;
  if (r->wait_all && !r->body_done)
    return;
  uint64_t tok = r->body_tok;
  lua_State *co = ty_task_wakeable(r->task, tok);
  if (!co)
    return;
  r->body_tok = 0;
  ty_task_resume(r->task, 0);
}

/* ---------------------------------------------------------------------- */
/* Response framing                                                       */

const char *ty_http_reason(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 206:
    return "Partial Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 303:
    return "See Other";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 410:
    return "Gone";
  case 411:
    return "Length Required";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 416:
    return "Range Not Satisfiable";
  case 422:
    return "Unprocessable Content";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Unknown";
  }
}

/* "Date: Thu, 26 Nov 2026 23:00:00 GMT\r\n", formatted once a second. */
/* The cached "Date: ...\r\n" line and its length, renewed once a second. */
static const char *date_line(size_t *len) {
  static time_t last;
  static char cache[64];
  static size_t cache_len;
  time_t now = time(NULL);
  if (now != last) {
    struct tm tm;
    gmtime_r(&now, &tm);
    cache_len = strftime(cache, sizeof cache,
                         "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    last = now;
  }
  *len = cache_len;
  return cache;
}

void ty_http_date(char *out) {
  size_t n;
  const char *d = date_line(&n);
  memcpy(out, d, n + 1);
}

static int no_body_status(int status) {
  return status < 200 || status == 204 || status == 304;
}

/* put_head's clen for a streamed HTTP/1.0 body that ends with the close. */
#define UNKNOWN_LENGTH ((size_t)-1)

/* Writes the status line and headers into the connection's output. */
/* Appends a literal to the reserved output: the head is built with one
 * reservation and plain copies, it is on every response's path. */
#define PUT(lit) (memcpy(o, lit, sizeof lit - 1), o += sizeof lit - 1)

/* Writes the status line and headers into the connection's output. */
static int put_head(ty_req *r, size_t clen, int chunked) {
  ty_conn *c = r->conn;
  int keep = r->keep_alive && !r->res_close && !c->srv->closing;
  if (!keep)
    r->res_close = 1;
  size_t dlen;
  const char *date = date_line(&dlen);
  if (ty_buf_reserve(&c->out, 320 + dlen + r->rhead.len) != 0)
    return -1;
  char *o = c->out.p + c->out.len;
  if (r->status == 200 && r->http_minor) {
    PUT("HTTP/1.1 200 OK\r\n");
  } else {
    o += snprintf(o, 128, "HTTP/1.%d %d %s\r\n", r->http_minor ? 1 : 0,
                  r->status, ty_http_reason(r->status));
  }
  memcpy(o, date, dlen);
  o += dlen;
  int body = !no_body_status(r->status);
  if (!r->has_ctype && body)
    PUT("Content-Type: text/plain; charset=utf-8\r\n");
  if (r->rhead.len) {
    memcpy(o, r->rhead.p, r->rhead.len);
    o += r->rhead.len;
  }
  if (chunked) {
    PUT("Transfer-Encoding: chunked\r\n");
  } else if (!r->has_clen && body && clen != UNKNOWN_LENGTH) {
    char digits[24];
    int d = (int)sizeof digits;
    do {
      digits[--d] = (char)('0' + clen % 10);
      clen /= 10;
    } while (clen);
    PUT("Content-Length: ");
    memcpy(o, digits + d, sizeof digits - (size_t)d);
    o += sizeof digits - (size_t)d;
    PUT("\r\n");
  }
  if (!keep)
    PUT("Connection: close\r\n\r\n");
  else if (!r->http_minor)
    PUT("Connection: keep-alive\r\n\r\n");
  else
    PUT("\r\n");
  c->out.len = (size_t)(o - c->out.p);
  return 0;
}

#undef PUT

static void maybe_flush(ty_conn *c) {
  if (!c->in_read)
    ty_conn_flush(c);
}

/* Sends a complete response with body. */
static void send_full(ty_req *r, const char *body, size_t len) {
  ty_conn *c = r->conn;
  r->res_state = RES_DONE;
  if (c->closing)
    return;
  body = ty_gzip_whole(r, body, &len);
  put_head(r, len, 0);
  if (!r->head_only && !no_body_status(r->status)) {
    ty_buf_add(&c->out, body, len);
    r->res_bytes = len;
  }
  maybe_flush(c);
}

/* An error response the handler never saw (parse errors, limits). */
void ty_res_error(ty_conn *c, int status, int close_after) {
  char buf[256], date[64];
  const char *reason = ty_http_reason(status);
  ty_http_date(date);
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; "
                   "charset=utf-8\r\nContent-Length: %zu\r\n%s\r\n%s\n",
                   status, reason, date, strlen(reason) + 1,
                   close_after ? "Connection: close\r\n" : "", reason);
  ty_buf_add(&c->out, buf, (size_t)n);
  if (close_after)
    c->close_after = 1;
  if (c->req && !c->req->dispatched) { /* a handler's end is counted there */
    c->req->res_bytes = strlen(reason) + 1;
    ty_http_finished(c, c->req, status);
  }
}

/* ---------------------------------------------------------------------- */
/* res methods                                                            */

static ty_req *check_res(lua_State *L) { return check_live(L, 1, RES_MT); }

static ty_req *check_unsent(lua_State *L) {
  ty_req *r = check_res(L);
  if (r->res_state != RES_NONE)
    luaL_error(L, "response headers were already sent");
  return r;
}

/* res:status(code) -> res */
static int res_status(lua_State *L) {
  ty_req *r = check_unsent(L);
  lua_Integer code = luaL_checkinteger(L, 2);
  luaL_argcheck(L, code >= 100 && code <= 999, 2, "status must be 100-999");
  r->status = (int)code;
  lua_settop(L, 1);
  return 1;
}

/* RFC 9110 token characters, as a table: every res:header checks them. */
static unsigned char token_chars[256];

static void init_token_chars(void) {
  const char *extra = "!#$%&'*+-.^_`|~";
  for (int ch = 0; ch < 256; ch++)
    token_chars[ch] = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || (ch && strchr(extra, ch));
}

static int is_token_char(int ch) { return token_chars[ch & 0xff]; }

/* Removes earlier lines of header `name` from the handler's headers. */
static void drop_header(ty_buf *h, const char *name, size_t n) {
  size_t i = 0;
  while (i < h->len) {
    char *eol = memchr(h->p + i, '\n', h->len - i);
    size_t end = eol ? (size_t)(eol - h->p) + 1 : h->len;
    if (end - i > n && h->p[i + n] == ':' &&
        strncasecmp(h->p + i, name, n) == 0) {
      memmove(h->p + i, h->p + end, h->len - end);
      h->len -= end - i;
    } else {
      i = end;
    }
  }
}

/* Whether v[0..n) holds CR, LF or NUL: one pass, most bytes are above CR. */
static int has_ctl(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)v[i];
    if (ch <= '\r' && (ch == '\r' || ch == '\n' || ch == 0))
      return 1;
  }
  return 0;
}

/* Appends "name: value\r\n" to the handler's headers, with one reservation.
 * [-0, +0, e] */
static void add_header_line(lua_State *L, ty_req *r, const char *name, size_t n,
                            int vidx) {
  size_t vlen;
  const char *v;
  int converted = lua_type(L, vidx) != LUA_TSTRING;
  if (converted)
    v = luaL_tolstring(L, vidx, &vlen);
  else
    v = lua_tolstring(L, vidx, &vlen); /* a string already: no conversion */
  if (has_ctl(v, vlen))
    luaL_error(L, "bad argument #2 to 'header' (value contains CR, LF or NUL)");
  if (ty_buf_reserve(&r->rhead, n + vlen + 4) != 0)
    luaL_error(L, "out of memory");
  char *o = r->rhead.p + r->rhead.len;
  memcpy(o, name, n);
  o[n] = ':', o[n + 1] = ' ';
  memcpy(o + n + 2, v, vlen);
  o[n + 2 + vlen] = '\r', o[n + 3 + vlen] = '\n';
  r->rhead.len += n + vlen + 4;
  if (converted)
    lua_pop(L, 1);
}

/* res:header(name, value) -> res. Replaces an earlier value; a table of
 * values sends the header once per value (Set-Cookie). */
static int res_header(lua_State *L) {
  ty_req *r = check_unsent(L);
  size_t n;
  const char *name = luaL_checklstring(L, 2, &n);
  luaL_argcheck(L, n > 0, 2, "empty header name");
  for (size_t i = 0; i < n; i++)
    if (!is_token_char((unsigned char)name[i]))
      luaL_argerror(L, 2, "header name contains an invalid character");
  int t = lua_type(L, 3);
  luaL_argexpected(L, t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TTABLE,
                   3, "string, number or table");
  drop_header(&r->rhead, name, n);
  if (n == 12 && strncasecmp(name, "content-type", 12) == 0)
    r->has_ctype = 1;
  if (n == 14 && strncasecmp(name, "content-length", 14) == 0)
    r->has_clen = 1;
  if (n == 10 && strncasecmp(name, "connection", 10) == 0) {
    const char *v = lua_tostring(L, 3);
    if (v && strcasecmp(v, "close") == 0)
      r->res_close = 1;
    lua_settop(L, 1);
    return 1; /* framing headers are ours to write */
  }
  if (t == LUA_TTABLE) {
    lua_Integer len = luaL_len(L, 3);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_geti(L, 3, i);
      add_header_line(L, r, name, n, lua_gettop(L));
      lua_pop(L, 1);
    }
  } else {
    add_header_line(L, r, name, n, 3);
  }
  lua_settop(L, 1);
  return 1;
}

/* res:send([body]) ends the response with Content-Length. */
static int res_send(lua_State *L) {
  ty_req *r = check_res(L);
  if (r->res_state == RES_STREAMING)
    return luaL_error(L, "response is streaming: end it with res:finish()");
  if (r->res_state ==
      RES_DONE) /* the usual cause: two answers in one handler */
    return luaL_error(L, "response already sent: res:send, res:json and "
                         "res:redirect each end the response, so call one of "
                         "them once per request");
  size_t len = 0;
  const char *body = luaL_optlstring(L, 2, "", &len);
  if (r->has_clen) { /* the handler's Content-Length would be a second one */
    drop_header(&r->rhead, "Content-Length", 14);
    r->has_clen = 0;
  }
  send_full(r, body, len);
  return 0;
}

/* Sends the JSON text on top of the stack as the whole response, with
 * Content-Type application/json (replacing a handler-set one). */
static void send_json(ty_req *r, lua_State *L) {
  static const char ctype[] = "Content-Type: application/json\r\n";
  size_t len;
  const char *text = lua_tolstring(L, -1, &len);
  drop_header(&r->rhead, "Content-Type", 12);
  if (r->has_clen) {
    drop_header(&r->rhead, "Content-Length", 14);
    r->has_clen = 0;
  }
  r->has_ctype = 1;
  if (ty_buf_add(&r->rhead, ctype, sizeof ctype - 1) != 0)
    luaL_error(L, "out of memory");
  send_full(r, text, len);
}

/* res:json(value[, status]) ends the response with value encoded as
 * tycho.json.encode does, as application/json. */
static int res_json(lua_State *L) {
  ty_req *r = check_unsent(L);
  if (lua_toboolean(L, 3)) {
    lua_Integer code = luaL_checkinteger(L, 3);
    luaL_argcheck(L, code >= 100 && code <= 999, 3, "status must be 100-999");
    r->status = (int)code;
  }
  ty_json_encode(L, 2); /* runs no Lua code: r stays unsent */
  send_json(r, L);
  return 0;
}

static void cancel_drain_wait(void *ud) { ((ty_req *)ud)->drain_tok = 0; }

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lua_settop(L, 1);
  return 1;
}

/* Output is written: wake a writer waiting on back-pressure. */
void ty_req_drained(ty_req *r) {
  if (!r->drain_tok || !r->task)
    return;
  ty_conn *c = r->conn;
  if (c->out.len + c->wbuf.len > TY_WRITE_HIGH_WATER / 2)
    return;
  lua_State *co = ty_task_wakeable(r->task, r->drain_tok);
  r->drain_tok = 0;
  if (co)
    ty_task_resume(r->task, 0);
}

static void put_chunk(ty_req *r, const char *p, size_t len) {
  ty_conn *c = r->conn;
  if (len == 0 || r->head_only || no_body_status(r->status))
    return;
  if (r->gz && (p = ty_gzip_chunk(r, p, &len), len == 0))
    return; /* an empty chunk would end the body */
  if (r->chunked) {
    char hex[24];
    int n = snprintf(hex, sizeof hex, "%zx\r\n", len);
    ty_buf_add(&c->out, hex, (size_t)n);
  }
  ty_buf_add(&c->out, p, len);
  r->res_bytes += len;
  if (r->chunked)
    ty_buf_add(&c->out, "\r\n", 2);
}

static void start_stream(ty_req *r) {
  r->res_state = RES_STREAMING;
  ty_gzip_stream_start(r);
  r->chunked = !r->has_clen && r->http_minor >= 1;
  if (!r->has_clen && !r->http_minor)
    r->res_close = 1; /* 1.0: end by close */
  put_head(r, r->chunked ? 0 : UNKNOWN_LENGTH, r->chunked);
}

/* res:write(chunk) -> res; streams (chunked unless a length was set) and
 * waits while the client is slower than the handler. */
static int res_write(lua_State *L) {
  ty_req *r = check_res(L);
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  if (r->res_state == RES_DONE)
    return luaL_error(L, "response already sent");
  ty_conn *c = r->conn;
  if (c->closing)
    return luaL_error(L, "connection closed");
  if (r->res_state == RES_NONE)
    start_stream(r);
  put_chunk(r, p, len);
  maybe_flush(c);
  lua_settop(L, 1);
  if (c->out.len + c->wbuf.len <= TY_WRITE_HIGH_WATER || !ty_task_current(L))
    return 1;
  r->drain_tok = ty_task_prepare(L);
  return ty_task_park_k(L, cancel_drain_wait, r, write_k, 0);
}

static void finish_stream(ty_req *r) {
  ty_conn *c = r->conn;
  if (r->res_state == RES_NONE)
    start_stream(r);
  if (r->gz) { /* the gzip trailer, as the last chunk */
    size_t len;
    const char *p = ty_gzip_finish(r, &len);
    put_chunk(r, p, len);
  }
  if (r->chunked && !r->head_only)
    ty_buf_add(&c->out, "0\r\n\r\n", 5);
  r->res_state = RES_DONE;
  maybe_flush(c);
}

/* res:finish([chunk]) ends a streamed response. */
static int res_finish(lua_State *L) {
  ty_req *r = check_res(L);
  size_t len = 0;
  const char *p = luaL_optlstring(L, 2, NULL, &len);
  if (r->res_state == RES_DONE)
    return luaL_error(L, "response already sent");
  if (r->conn->closing)
    return 0;
  if (p && r->res_state == RES_NONE)
    start_stream(r);
  if (p)
    put_chunk(r, p, len);
  finish_stream(r);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Files: sendfile(2) from the page cache straight to the socket          */

static void file_done(ty_req *r) {
  close(r->file_fd);
  r->file_fd = -1;
  r->res_state = RES_DONE;
  if (r->file_tok && r->task) {
    uint64_t tok = r->file_tok;
    r->file_tok = 0;
    if (ty_task_wakeable(r->task, tok))
      ty_task_resume(r->task, 0);
  }
}

/* When the socket is full, one chunk goes through a normal write: its
 * completion is our "writable again" signal, and then sendfile resumes. */
static int write_one_chunk(ty_req *r) {
  ty_conn *c = r->conn;
  size_t want = r->file_left < 65536 ? (size_t)r->file_left : 65536;
  if (ty_buf_reserve(&c->out, want) != 0)
    return -1;
  ssize_t got = pread(r->file_fd, c->out.p + c->out.len, want, r->file_off);
  if (got <= 0)
    return -1;
  c->out.len += (size_t)got;
  r->file_off += got;
  r->file_left -= got;
  ty_conn_flush(c);
  return 0;
}

/* Moves file bytes to the socket until done or the socket is full. */
void ty_req_pump_file(ty_req *r) {
  ty_conn *c = r->conn;
  uv_os_fd_t sock;
  if (r->file_fd < 0 || c->closing)
    return;
  if (uv_fileno((uv_handle_t *)&c->h, &sock) != 0)
    return;
  while (r->file_left > 0) {
    if (c->writing || c->out.len)
      return; /* on_write calls back here */
    size_t want = r->file_left < (1 << 20) ? (size_t)r->file_left : (1 << 20);
    off_t off = (off_t)r->file_off;
    ssize_t n = sendfile(sock, r->file_fd, &off, want);
    if (n > 0) {
      r->file_off = off;
      r->file_left -= n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (write_one_chunk(r) == 0)
        continue;
    }
    /* a short file or a dead socket: the response cannot be completed */
    r->res_close = 1;
    file_done(r);
    ty_conn_close(c);
    return;
  }
  file_done(r);
}

static void cancel_file_wait(void *ud) { ((ty_req *)ud)->file_tok = 0; }

static int send_file_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return 0;
}

/* res:send_file(fd, offset, length): sends length bytes of the open file
 * fd from offset as the body, and closes fd. Waits until it is sent. */
static int res_send_file(lua_State *L) {
  ty_req *r = check_unsent(L);
  int fd = (int)luaL_checkinteger(L, 2);
  lua_Integer off = luaL_checkinteger(L, 3);
  lua_Integer len = luaL_checkinteger(L, 4);
  luaL_argcheck(L, off >= 0, 3, "negative offset");
  luaL_argcheck(L, len >= 0, 4, "negative length");
  ty_conn *c = r->conn;
  if (r->has_clen) {
    drop_header(&r->rhead, "Content-Length", 14);
    r->has_clen = 0;
  }
  if (c->closing || r->head_only || len == 0 || no_body_status(r->status)) {
    close(fd); /* HEAD: the head says how long GET's body would be */
    if (!c->closing)
      put_head(r, (size_t)len, 0);
    r->res_state = RES_DONE;
    maybe_flush(c);
    return 0;
  }
  put_head(r, (size_t)len, 0);
  r->res_state = RES_STREAMING;
  r->file_fd = fd;
  r->file_off = off;
  r->file_left = len;
  ty_conn_flush(c);
  ty_req_pump_file(r);
  if (r->file_fd < 0 || !ty_task_current(L))
    return 0;
  r->file_tok = ty_task_prepare(L);
  return ty_task_park_k(L, cancel_file_wait, r, send_file_k, 0);
}

/* res:compress(on) -> res: false never gzips this response; true gzips it
 * whenever the client accepts gzip, whatever the server's options say
 * (never for HEAD, 204, 206, 304 or a Content-Encoding already set). */
static int res_compress(lua_State *L) {
  ty_req *r = check_unsent(L);
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  r->gz_mode = lua_toboolean(L, 2) ? TY_GZ_ON : TY_GZ_OFF;
  lua_settop(L, 1);
  return 1;
}

/* res.sent -> whether the response has ended. Methods (the upvalue) come
 * first and without a check of the box: every method checks it, and this
 * lookup is on every res:send. */
static int res_index(lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
    return 1;
  ty_req *r = check_res(L);
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "sent") == 0) {
    lua_pushboolean(L, r->res_state == RES_DONE);
  } else if (strcmp(key, "status_code") == 0) {
    lua_pushinteger(L, r->status);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Dispatch                                                               */

static void log_failure(lua_State *co, ty_req *r, const char *what) {
  const char *msg = lua_tostring(co, -1);
  fprintf(stderr, "tycho: %s: %s %.*s: %s\n", what,
          llhttp_method_name((llhttp_method_t)r->method), (int)path_len(r),
          r->head.p, msg ? msg : "(error object is not a string)");
  fflush(stderr);
}

/* Answers for a handler that failed before responding: the status and its
 * reason phrase, without the headers the handler had set. */
static void send_failure(ty_req *r, int status) {
  char body[64];
  int n = snprintf(body, sizeof body, "%s\n", ty_http_reason(status));
  r->status = status;
  r->rhead.len = 0;
  r->has_ctype = r->has_clen = 0;
  send_full(r, body, (size_t)n);
}

/* ---------------------------------------------------------------------- */
/* Runaway handlers: the per-request cpu limit                            */

static char cpu_key; /* registry: task coroutine (light) -> its ty_req */

/* A count hook: charges the time the handler ran since the last check to
 * its request. The loop time (uv_now) stands still while Lua runs, so a
 * check in the same loop turn as the last one means the handler ran all
 * along; one in a later turn means it yielded in between, and the pause is
 * not charged. Coroutines the handler makes inherit the hook and are
 * charged to the task being resumed. Over the limit, every instruction
 * raises from then on, so a pcall in the handler cannot swallow the stop. */
static void cpu_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_State *co = ty_task_running_thread();
  if (!co)
    return;
  int top = lua_gettop(L);
  ty_req *r = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cpu_key) == LUA_TTABLE) {
    lua_rawgetp(L, -1, co);
    r = lua_touserdata(L, -1);
  }
  lua_settop(L, top);
  if (!r || !r->conn)
    return;
  uint64_t now = uv_hrtime(), turn = uv_now(ty_loop());
  if (r->cpu_last_ns && r->cpu_loop_ms == turn)
    r->cpu_used_ns += now - r->cpu_last_ns;
  r->cpu_last_ns = now;
  r->cpu_loop_ms = turn;
  uint64_t limit = r->conn->srv->lim.cpu_limit_ms;
  if (r->cpu_used_ns < limit * 1000000)
    return;
  r->cpu_stopped = 1;
  lua_sethook(L, cpu_hook, LUA_MASKCOUNT, 1);
  if (co != L)
    lua_sethook(co, cpu_hook, LUA_MASKCOUNT, 1);
  luaL_error(L, "cpu limit exceeded (the handler ran for over %d ms)",
             (int)limit);
}

/* Starts (r) or ends (NULL) the cpu account of the handler coroutine co. */
static void watch_cpu(lua_State *L, lua_State *co, ty_req *r) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cpu_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cpu_key);
  }
  if (r)
    lua_pushlightuserdata(L, r);
  else
    lua_pushnil(L);
  lua_rawsetp(L, -2, co);
  lua_pop(L, 1);
  if (r)
    lua_sethook(co, cpu_hook, LUA_MASKCOUNT, TY_CPU_HOOK_COUNT);
  else
    lua_sethook(co, NULL, 0, 0);
}

/* What the log says about a handler that raised. */
static const char *failure_kind(lua_State *co, ty_req *r) {
  if (r->cpu_stopped)
    return "handler stopped (cpu limit)";
  const char *msg = lua_tostring(co, -1);
  if (ty_alloc_limit() && msg && strstr(msg, "not enough memory"))
    return "handler failed (memory limit)";
  return "handler failed";
}

/* respond_table(r, value): a handler returned one table, the common JSON
 * answer. Does what the return hook's res:json would, with no res box and
 * no Lua in between. */
static int respond_table(lua_State *L) {
  ty_req *r = lua_touserdata(L, 1);
  ty_json_encode(L, 2);
  send_json(r, L);
  return 0;
}

/* The handler returned without responding: use its return values. */
static void respond_from_results(ty_req *r, lua_State *co) {
  int n = lua_gettop(co);
  if (n >= 1 && lua_type(co, 1) == LUA_TSTRING && n == 1) {
    size_t len;
    const char *s = lua_tolstring(co, 1, &len);
    send_full(r, s, len);
    return;
  }
  lua_State *L = ty_host_get()->L;
  if (n == 0 || return_hook_ref == LUA_NOREF) {
    fprintf(stderr,
            "tycho: handler returned without responding: %s %.*s: "
            "call res:send(body), or return a string or a table\n",
            llhttp_method_name((llhttp_method_t)r->method), (int)path_len(r),
            r->head.p);
    send_failure(r, 500);
    return;
  }
  if (n == 1 && lua_type(co, 1) == LUA_TTABLE) {
    lua_pushcfunction(L, respond_table);
    lua_pushlightuserdata(L, r);
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, return_hook_ref);
    push_box(L, r, RES_MT);
  }
  lua_xmove(co, L, n);
  if (ty_pcall(L, n + 1, 0) != LUA_OK) {
    ty_report(L, "handler result");
    if (r->res_state == RES_NONE)
      send_failure(r, 500);
  }
}

static void on_handler_done(ty_task *t, int how, void *ud) {
  ty_req *r = ud;
  ty_conn *c = r->conn;
  lua_State *co = ty_task_thread(t);
  r->task = NULL;
  r->body_tok = r->drain_tok = 0;
  if (c->srv->lim.cpu_limit_ms)
    watch_cpu(ty_host_get()->L, co, NULL);
  if (how == TY_TASK_OK) {
    if (r->res_state == RES_NONE && !c->closing)
      respond_from_results(r, co);
    else if (r->res_state == RES_STREAMING && !c->closing)
      finish_stream(r);
  } else if (how == TY_TASK_ERROR) {
    log_failure(co, r, failure_kind(co, r));
    if (r->res_state == RES_NONE && !c->closing) {
      /* A handler stopped for its cpu time: 503, the server is fine. */
      send_failure(r, r->cpu_stopped ? 503 : 500);
    } else {
      r->res_close = 1;
      c->close_after = 1;
    }
  }
  /* 499 (nginx's): the client went away before the response ended */
  ty_http_finished(
      c, r,
      how == TY_TASK_CANCELLED && r->res_state != RES_DONE ? 499 : r->status);
  ty_conn_request_done(c);
}

void ty_req_dispatch(ty_req *r) {
  ty_conn *c = r->conn;
  lua_State *L = ty_host_get()->L;
  r->dispatched = 1;
  r->generation = c->srv->generation;
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->srv->handler_ref);
  push_box(L, r, REQ_MT);
  push_box(L, r, RES_MT);
  ty_task *t = ty_task_new(L, 2, "http handler");
  r->task = t;
  if (c->srv->lim.cpu_limit_ms)
    watch_cpu(L, ty_task_thread(t), r);
  ty_task_on_done(t, on_handler_done, r);
  ty_task_run(t);
}

/* ---------------------------------------------------------------------- */
/* Module                                                                 */

/* set_return_hook(fn): fn(res, ...) answers from a handler's return values */
static int l_set_return_hook(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  if (return_hook_ref != LUA_NOREF)
    luaL_unref(L, LUA_REGISTRYINDEX, return_hook_ref);
  return_hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* core.append_header(res, name, value): adds one line of header `name`,
 * keeping earlier ones (res:cookie's Set-Cookie lines). The caller checks
 * name and value; CR, LF and NUL are refused here as in res:header. */
static int l_append_header(lua_State *L) {
  ty_req *r = check_unsent(L);
  size_t n;
  const char *name = luaL_checklstring(L, 2, &n);
  luaL_checkstring(L, 3);
  add_header_line(L, r, name, n, 3);
  return 0;
}

static int l_url_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  ty_url_decode(L, s, n, lua_toboolean(L, 2));
  return 1;
}

static int l_query_parse(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  ty_query_parse(L, s, n);
  return 1;
}

static int box_tostring(lua_State *L) {
  box *b = lua_touserdata(L, 1);
  int live = b->r && b->r->id == b->id;
  lua_pushfstring(L, "%s (%s)", luaL_checkstring(L, lua_upvalueindex(1)),
                  live ? "live" : "over");
  return 1;
}

/* Makes metatable mt whose __index is index with the methods table as its
 * upvalue, and leaves the methods table on the stack. [-0, +1, m] */
static void new_class(lua_State *L, const char *mt, lua_CFunction index,
                      const luaL_Reg *methods) {
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  luaL_newmetatable(L, mt);
  lua_pushvalue(L, -1);
  if (strcmp(mt, REQ_MT) == 0) {
    req_mt = lua_topointer(L, -1);
    req_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  } else {
    res_mt = lua_topointer(L, -1);
    res_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushstring(L, mt);
  lua_pushcclosure(L, box_tostring, 1);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

int ty_http_message_open(lua_State *L) {
  static const luaL_Reg req_m[] = {{"header", req_header},
                                   {"body", req_body},
                                   {"chunks", req_chunks},
                                   {NULL, NULL}};
  static const luaL_Reg res_m[] = {{"status", res_status},
                                   {"header", res_header},
                                   {"send", res_send},
                                   {"json", res_json},
                                   {"write", res_write},
                                   {"finish", res_finish},
                                   {"send_file", res_send_file},
                                   {"compress", res_compress},
                                   {NULL, NULL}};
  init_token_chars();
  lua_newtable(L);
  int mod = lua_gettop(L);
  new_class(L, REQ_MT, req_index, req_m);
  lua_setfield(L, mod, "request_methods");
  new_class(L, RES_MT, res_index, res_m);
  lua_setfield(L, mod, "response_methods");
  luaL_getmetatable(L, REQ_MT);
  lua_pushcfunction(L, req_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_set_return_hook);
  lua_setfield(L, mod, "set_return_hook");
  lua_pushcfunction(L, l_append_header);
  lua_setfield(L, mod, "append_header");
  lua_pushcfunction(L, l_url_decode);
  lua_setfield(L, mod, "url_decode");
  lua_pushcfunction(L, l_query_parse);
  lua_setfield(L, mod, "query_parse");
  return 1;
}
