/* client_parser.c: llhttp in response mode, as a small incremental parser
 * object for the HTTP client (lua/tycho/http/client.lua). The client feeds
 * whatever bytes the socket gave; the parser keeps the status line, headers
 * and body pieces of one response in a Lua table behind the userdata, and
 * stops exactly at the end of the message so bytes after it stay with the
 * caller. All storage is Lua-managed: nothing to free, nothing to leak.
 *
 *   local p = require("tycho.http.response_parser").new{max_header_bytes=}
 *   p:reset(head_only)           -- before each response on a connection
 *   n, err, code = p:execute(s)  -- bytes consumed; stops after a message
 *   p:finish()                   -- at EOF: ends a read-until-close body
 *   p:status(), p:headers(), p:body(), p:headers_done(), p:done(),
 *   p:keep_alive(), p:version()
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "llhttp.h"

#define PARSER_MT "tycho.http.response_parser"
#define DEFAULT_MAX_HEADER_BYTES (64 * 1024)
#define DEFAULT_MAX_HEADERS 200

/* Fields of the state table (the userdata's user value). */
#define F_REASON "reason"   /* status text, accumulated */
#define F_FIELD "field"     /* current header name, accumulated */
#define F_VALUE "value"     /* current header value, accumulated */
#define F_HEADERS "headers" /* {name1, value1, name2, value2, ...} */
#define F_BODY "body"       /* body pieces since the last p:body() */

typedef struct {
  llhttp_t p;
  lua_State *L; /* set for the duration of one execute/finish */
  int st;       /* absolute index of the state table on L */
  size_t head_bytes, max_head_bytes;
  int nheaders, max_headers, nbody;
  const char *too_large; /* why a limit stopped the parse, or NULL */
  unsigned headers_done : 1, done : 1, head_only : 1;
} rparser;

static llhttp_settings_t settings;

static rparser *from(llhttp_t *p) { return (rparser *)p; }

/* ---------------------------------------------------------------------- */
/* llhttp callbacks: they run inside execute, with the state table at st  */

/* Appends at[0..len) to the string field `key` of the state table. */
static void append(rparser *rp, const char *key, const char *at, size_t len) {
  lua_State *L = rp->L;
  if (lua_getfield(L, rp->st, key) == LUA_TSTRING) {
    lua_pushlstring(L, at, len);
    lua_concat(L, 2);
  } else {
    lua_pop(L, 1);
    lua_pushlstring(L, at, len);
  }
  lua_setfield(L, rp->st, key);
}

/* Counts head bytes; past the limit the parse fails with a clear reason. */
static int count_head(rparser *rp, size_t len) {
  rp->head_bytes += len;
  if (rp->head_bytes <= rp->max_head_bytes)
    return 0;
  rp->too_large = "response headers too large";
  return -1;
}

static int on_status(llhttp_t *p, const char *at, size_t len) {
  rparser *rp = from(p);
  if (count_head(rp, len))
    return -1;
  append(rp, F_REASON, at, len);
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  rparser *rp = from(p);
  if (count_head(rp, len))
    return -1;
  append(rp, F_FIELD, at, len);
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  rparser *rp = from(p);
  if (count_head(rp, len))
    return -1;
  append(rp, F_VALUE, at, len);
  return 0;
}

/* Moves the finished name/value pair into the headers list. */
static int on_header_value_complete(llhttp_t *p) {
  rparser *rp = from(p);
  lua_State *L = rp->L;
  if (++rp->nheaders > rp->max_headers) {
    rp->too_large = "too many response headers";
    return -1;
  }
  lua_getfield(L, rp->st, F_HEADERS);
  lua_Integer n = (lua_Integer)luaL_len(L, -1);
  if (lua_getfield(L, rp->st, F_FIELD) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  lua_rawseti(L, -2, n + 1);
  if (lua_getfield(L, rp->st, F_VALUE) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, ""); /* an empty value never calls on_header_value */
  }
  lua_rawseti(L, -2, n + 2);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_setfield(L, rp->st, F_FIELD);
  lua_pushnil(L);
  lua_setfield(L, rp->st, F_VALUE);
  return 0;
}

/* Returning 1 tells llhttp the response has no body: the answer to HEAD,
 * and a 304 even when it repeats the Content-Length of the cached copy
 * (llhttp leaves that case to us). */
static int on_headers_complete(llhttp_t *p) {
  rparser *rp = from(p);
  rp->headers_done = 1;
  return rp->head_only || p->status_code == 304 ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  rparser *rp = from(p);
  lua_State *L = rp->L;
  lua_getfield(L, rp->st, F_BODY);
  lua_pushlstring(L, at, len);
  lua_rawseti(L, -2, ++rp->nbody);
  lua_pop(L, 1);
  return 0;
}

/* Pausing stops execute right after this message, so the caller learns
 * where it ended and the next response starts from a reset parser. */
static int on_message_complete(llhttp_t *p) {
  from(p)->done = 1;
  return HPE_PAUSED;
}

/* ---------------------------------------------------------------------- */
/* Lua API                                                                */

static rparser *check_parser(lua_State *L) {
  return luaL_checkudata(L, 1, PARSER_MT);
}

/* Pushes a fresh state table and stores it as the user value of idx. */
static void new_state(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_createtable(L, 0, 5);
  lua_newtable(L);
  lua_setfield(L, -2, F_HEADERS);
  lua_newtable(L);
  lua_setfield(L, -2, F_BODY);
  lua_setiuservalue(L, idx, 1);
}

static void reset(lua_State *L, rparser *rp, int head_only) {
  llhttp_init(&rp->p, HTTP_RESPONSE, &settings);
  rp->head_bytes = 0;
  rp->nheaders = rp->nbody = 0;
  rp->headers_done = rp->done = 0;
  rp->too_large = NULL;
  rp->head_only = head_only != 0;
  new_state(L, 1);
}

/* new([{max_header_bytes=, max_headers=}]) -> parser */
static int l_new(lua_State *L) {
  lua_Integer max_bytes = DEFAULT_MAX_HEADER_BYTES;
  lua_Integer max_headers = DEFAULT_MAX_HEADERS;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "max_header_bytes");
    max_bytes = luaL_optinteger(L, -1, max_bytes);
    lua_getfield(L, 1, "max_headers");
    max_headers = luaL_optinteger(L, -1, max_headers);
    lua_pop(L, 2);
    luaL_argcheck(L, max_bytes > 0 && max_headers > 0, 1,
                  "limits must be positive");
  }
  lua_settop(L, 0);
  rparser *rp = lua_newuserdatauv(L, sizeof *rp, 1);
  memset(rp, 0, sizeof *rp);
  rp->max_head_bytes = (size_t)max_bytes;
  rp->max_headers = max_headers > 1000000 ? 1000000 : (int)max_headers;
  luaL_setmetatable(L, PARSER_MT);
  reset(L, rp, 0);
  return 1;
}

/* p:reset([head_only]): ready for the next response. */
static int l_reset(lua_State *L) {
  rparser *rp = check_parser(L);
  reset(L, rp, lua_toboolean(L, 2));
  return 0;
}

/* Pushes nil, reason, code for the parser's error; returns 3. */
static int push_error(lua_State *L, rparser *rp, llhttp_errno_t err) {
  const char *reason =
      rp->too_large ? rp->too_large : llhttp_get_error_reason(&rp->p);
  lua_pushnil(L);
  lua_pushfstring(L, "invalid HTTP response: %s", reason ? reason : "error");
  lua_pushstring(L, rp->too_large ? "ETOOLARGE" : llhttp_errno_name(err));
  return 3;
}

/* Runs fn with the parser's state table at a known index. */
static llhttp_errno_t with_state(lua_State *L, rparser *rp, const char *data,
                                 size_t len, int finish) {
  lua_getiuservalue(L, 1, 1);
  rp->L = L;
  rp->st = lua_gettop(L);
  llhttp_errno_t err =
      finish ? llhttp_finish(&rp->p) : llhttp_execute(&rp->p, data, len);
  rp->L = NULL;
  lua_pop(L, 1);
  return err;
}

/* p:execute(data) -> bytes consumed, or nil, message, code */
static int l_execute(lua_State *L) {
  rparser *rp = check_parser(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (rp->done)
    return luaL_error(L, "response complete: call reset first");
  llhttp_errno_t err = with_state(L, rp, data, len, 0);
  if (err == HPE_OK) {
    lua_pushinteger(L, (lua_Integer)len);
    return 1;
  }
  if (err == HPE_PAUSED && rp->done) {
    const char *end = llhttp_get_error_pos(&rp->p);
    lua_pushinteger(L, (lua_Integer)(end - data));
    return 1;
  }
  return push_error(L, rp, err);
}

/* p:finish() -> true when the message is complete at EOF, or false when
 * it was cut short, or nil, message, code on a protocol error. */
static int l_finish(lua_State *L) {
  rparser *rp = check_parser(L);
  if (rp->done) {
    lua_pushboolean(L, 1);
    return 1;
  }
  llhttp_errno_t err = with_state(L, rp, NULL, 0, 1);
  if (err != HPE_OK && err != HPE_PAUSED)
    return push_error(L, rp, err);
  lua_pushboolean(L, rp->done);
  return 1;
}

/* p:status() -> code, reason (nil before the status line is parsed) */
static int l_status(lua_State *L) {
  rparser *rp = check_parser(L);
  if (!rp->headers_done)
    return 0;
  lua_pushinteger(L, llhttp_get_status_code(&rp->p));
  lua_getiuservalue(L, 1, 1);
  if (lua_getfield(L, -1, F_REASON) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  lua_remove(L, -2);
  return 2;
}

/* p:version() -> "1.1" or "1.0" once the headers are parsed */
static int l_version(lua_State *L) {
  rparser *rp = check_parser(L);
  if (!rp->headers_done)
    return 0;
  lua_pushfstring(L, "%d.%d", (int)llhttp_get_http_major(&rp->p),
                  (int)llhttp_get_http_minor(&rp->p));
  return 1;
}

/* p:headers() -> {name1, value1, ...} as received (names keep their case) */
static int l_headers(lua_State *L) {
  check_parser(L);
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, F_HEADERS);
  return 1;
}

/* p:body() -> the body bytes parsed since the last call, as one string */
static int l_body(lua_State *L) {
  rparser *rp = check_parser(L);
  lua_getiuservalue(L, 1, 1);
  int st = lua_gettop(L);
  lua_getfield(L, st, F_BODY);
  int list = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= rp->nbody; i++) {
    lua_rawgeti(L, list, i);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  lua_newtable(L);
  lua_setfield(L, st, F_BODY);
  rp->nbody = 0;
  return 1;
}

static int l_headers_done(lua_State *L) {
  lua_pushboolean(L, check_parser(L)->headers_done);
  return 1;
}

static int l_done(lua_State *L) {
  lua_pushboolean(L, check_parser(L)->done);
  return 1;
}

/* p:keep_alive() -> true when the connection may carry another request */
static int l_keep_alive(lua_State *L) {
  rparser *rp = check_parser(L);
  lua_pushboolean(L, rp->done && llhttp_should_keep_alive(&rp->p));
  return 1;
}

int ty_http_response_parser_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"reset", l_reset},
                                     {"execute", l_execute},
                                     {"finish", l_finish},
                                     {"status", l_status},
                                     {"version", l_version},
                                     {"headers", l_headers},
                                     {"body", l_body},
                                     {"headers_done", l_headers_done},
                                     {"done", l_done},
                                     {"keep_alive", l_keep_alive},
                                     {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"new", l_new}, {NULL, NULL}};
  llhttp_settings_init(&settings);
  settings.on_status = on_status;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_header_value_complete = on_header_value_complete;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  if (luaL_newmetatable(L, PARSER_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
