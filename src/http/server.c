/* server.c: a listening HTTP server. Owns the listen socket, accepting
 * (connections themselves live in conn.c), the timeout sweep, graceful
 * close (stop accepting, let requests in flight finish, then report drained)
 * and the Lua server object: tycho.http.serve's C half.
 */
#include "core/alloc.h"
#include "core/limits.h"
#include "http/http.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SERVER_MT "tycho.http.server"

typedef struct {
  ty_server *s;
} server_box;

/* ---------------------------------------------------------------------- */
/* Close and drain                                                        */

static void wake_drain_waiters(ty_server *s) {
  lua_State *L = ty_host_get()->L;
  if (s->close_waiters_ref == LUA_NOREF || !L)
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->close_waiters_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->close_waiters_ref);
  s->close_waiters_ref = LUA_NOREF;
  int t = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, t);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    lua_State *co = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, t, -i); /* tokens sit at negative indices */
    uint64_t tok = (uint64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    ty_task *task = co ? *(ty_task **)lua_getextraspace(co) : NULL;
    if (task && ty_task_wakeable(task, tok))
      ty_task_resume(task, 0);
  }
  lua_pop(L, 1);
}

static void on_handle_closed(uv_handle_t *h);

static void maybe_closed(ty_server *s) {
  if (s->closing && s->sweep_late && s->nconns == 0) { /* lazy drain done */
    s->sweep_late = 0;
    uv_close((uv_handle_t *)&s->sweep, on_handle_closed);
  }
  if (!s->closing || s->closed || s->nconns > 0 || s->handles_open > 0)
    return;
  s->closed = 1;
  ty_host_untrack(&s->closer);
  lua_State *L = ty_host_get()->L;
  if (L && !ty_host_get()->stopping)
    wake_drain_waiters(s);
  if (L) {
    luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->log_ref);
  }
  s->handler_ref = s->self_ref = s->log_ref = LUA_NOREF;
  /* the struct itself is freed by the Lua object's __gc */
}

void ty_server_conn_gone(ty_server *s) { maybe_closed(s); }

static void on_handle_closed(uv_handle_t *h) {
  ty_server *s = h->data;
  s->handles_open--;
  maybe_closed(s);
}

/* Stops accepting; idle connections close now, busy ones after their
 * current response (keep-alive is off from here on). A lazy close leaves
 * idle connections open until their next response (sent with Connection:
 * close) or their keep-alive timeout: closing an idle connection races
 * with a request the client may be sending, which a rolling restart of
 * `--workers` must not lose. */
static void server_close(ty_server *s, int force, int lazy) {
  if (!s->closing) {
    s->closing = 1;
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
    if (lazy && !force && s->handles_open == 2)
      s->sweep_late = 1;
    else
      uv_close((uv_handle_t *)&s->sweep, on_handle_closed);
  }
  if (s->sweep_late && !force)
    return;
  if (s->sweep_late) {
    s->sweep_late = 0;
    uv_close((uv_handle_t *)&s->sweep, on_handle_closed);
  }
  /* (an inject server starts out closing and has no handles of its own) */
  ty_conn *c = s->conns.next;
  while (c != &s->conns) {
    ty_conn *next = c->next;
    if (c->upgraded && !force)
      ty_ws_going_away(c);
    else if (force || !c->req)
      ty_conn_close(c);
    c = next;
  }
}

static void closer_close(ty_closer *cl) {
  ty_server *s = (ty_server *)((char *)cl - offsetof(ty_server, closer));
  server_close(s, 1, 0);
}

/* ---------------------------------------------------------------------- */
/* Accepting and timeouts                                                 */

static void on_connection(uv_stream_t *l, int status) {
  ty_server *s = (ty_server *)l;
  if (status < 0 || s->closing)
    return;
  ty_conn_accept(s);
}

static void on_sweep(uv_timer_t *t) {
  ty_server *s = t->data;
  uint64_t now = uv_now(t->loop);
  ty_conn *c = s->conns.next;
  while (c != &s->conns) {
    ty_conn *next = c->next;
    if (c->deadline && now >= c->deadline) {
      /* The head or a body the handler has not answered yet: 408. */
      ty_req *r = c->req;
      if (r && !c->shut &&
          (!r->headers_done || (!r->body_done && r->res_state == RES_NONE))) {
        ty_res_error(c, 408, 1);
        ty_conn_flush(c);
      }
      ty_conn_close(c);
    }
    c = next;
  }
}

/* ---------------------------------------------------------------------- */
/* Lua API                                                                */

static size_t opt_size(lua_State *L, int t, const char *k, size_t def) {
  lua_getfield(L, t, k);
  lua_Integer v = luaL_optinteger(L, -1, (lua_Integer)def);
  lua_pop(L, 1);
  if (v <= 0)
    luaL_error(L, "bad option '%s' to 'serve' (positive number expected)", k);
  return (size_t)v;
}

static uint64_t opt_ms(lua_State *L, int t, const char *k, uint64_t def) {
  lua_getfield(L, t, k);
  lua_Number v = luaL_optnumber(L, -1, (lua_Number)def / 1000.0);
  lua_pop(L, 1);
  if (v <= 0)
    luaL_error(L, "bad option '%s' to 'serve' (positive seconds expected)", k);
  return (uint64_t)(v * 1000.0);
}

static void read_limits(lua_State *L, int t, ty_http_limits *l) {
  l->max_header_bytes = opt_size(L, t, "max_header_bytes", TY_MAX_HEADER_BYTES);
  l->max_headers = opt_size(L, t, "max_headers", TY_MAX_HEADERS);
  l->max_body_bytes = opt_size(L, t, "max_body_bytes", TY_MAX_BODY_BYTES);
  l->max_connections = opt_size(L, t, "max_connections", TY_MAX_CONNECTIONS);
  l->header_timeout_ms = opt_ms(L, t, "header_timeout", TY_HEADER_TIMEOUT_MS);
  l->keepalive_timeout_ms =
      opt_ms(L, t, "keepalive_timeout", TY_KEEPALIVE_TIMEOUT_MS);
  l->body_timeout_ms = opt_ms(L, t, "body_timeout", TY_BODY_TIMEOUT_MS);
  lua_getfield(L, t, "cpu_limit_ms"); /* 0 or absent: no limit */
  lua_Integer cpu = luaL_optinteger(L, -1, TY_CPU_LIMIT_MS);
  lua_pop(L, 1);
  if (cpu < 0)
    luaL_error(
        L,
        "bad option 'cpu_limit_ms' to 'serve' (non-negative integer expected)");
  l->cpu_limit_ms = (uint64_t)cpu;
}

static int push_uv_error(lua_State *L, int err, const char *what) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s: %s", what, uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

/* Opens our own SO_REUSEPORT socket (ops.c) for the listener. */
static int bind_reuseport(ty_server *s, const char *host, int port) {
  int fd;
  int err = ty_http_reuseport_socket(host, port, &fd);
  if (!err && (err = uv_tcp_open(&s->tcp, fd)) != 0)
    close(fd);
  return err;
}

/* fd >= 0: listen on an inherited socket (a `--workers` supervisor's). */
static int bind_listen(ty_server *s, const char *host, int port, int backlog,
                       int fd, int reuseport) {
  struct sockaddr_storage addr;
  int err = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
  if (err)
    err = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
  if (err)
    return err;
  if (fd >= 0)
    err = uv_tcp_open(&s->tcp, fd);
  else if (reuseport)
    err = bind_reuseport(s, host, port);
  else
    err = uv_tcp_bind(&s->tcp, (struct sockaddr *)&addr, 0);
  if (!err)
    err = uv_listen((uv_stream_t *)&s->tcp, backlog, on_connection);
  if (err)
    return err;
  int len = sizeof addr;
  uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&addr, &len);
  s->port = ntohs(addr.ss_family == AF_INET6
                      ? ((struct sockaddr_in6 *)&addr)->sin6_port
                      : ((struct sockaddr_in *)&addr)->sin_port);
  return 0;
}

static void on_failed_close(uv_handle_t *h) {
  ty_server *s = h->data;
  ty_gzip_conf_free(s->gzip);
  free(s);
}

/* A new server struct with the limits of the options table at idx (0:
 * the defaults), not yet visible to Lua. */
static ty_server *new_server(lua_State *L, int idx) {
  ty_http_limits lim; /* read first: a bad option raises before calloc */
  if (idx) {
    read_limits(L, idx, &lim);
  } else {
    lua_newtable(L);
    read_limits(L, lua_gettop(L), &lim);
    lua_pop(L, 1);
  }
  ty_gzip_conf *gzip = idx ? ty_gzip_conf_read(L, idx) : NULL;
  ty_server *s = calloc(1, sizeof *s);
  if (!s) {
    ty_gzip_conf_free(gzip);
    luaL_error(L, "out of memory");
    return NULL;
  }
  s->lim = lim;
  s->gzip = gzip;
  s->conns.next = s->conns.prev = &s->conns;
  s->close_waiters_ref = s->log_ref = LUA_NOREF;
  s->generation = 1;
  return s;
}

/* Takes the handler at handler_idx, registers the server for teardown and
 * pushes its Lua object, which anchors itself while the server is open. */
static void push_server(lua_State *L, ty_server *s, int handler_idx) {
  lua_pushvalue(L, handler_idx);
  s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  s->closer.close = closer_close;
  ty_host_track(&s->closer);
  server_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->s = s;
  luaL_setmetatable(L, SERVER_MT);
  lua_pushvalue(L, -1);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* listen(opts) -> server | nil, message, code. opts.handler is a function;
 * host, port, backlog and the limits are optional. */
static int l_listen(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "handler");
  luaL_argexpected(L, lua_isfunction(L, -1), 1, "function at field 'handler'");
  lua_getfield(L, 1, "host");
  const char *host = luaL_optstring(L, -1, "127.0.0.1");
  if (strcmp(host, "localhost") == 0)
    host = "127.0.0.1";
  lua_getfield(L, 1, "port");
  lua_Integer port = luaL_optinteger(L, -1, 8080);
  luaL_argcheck(L, port >= 0 && port <= 65535, 1, "port must be 0-65535");
  lua_getfield(L, 1, "backlog");
  int backlog = (int)luaL_optinteger(L, -1, 511);
  lua_getfield(L, 1, "fd");
  int fd = (int)luaL_optinteger(L, -1, -1);
  lua_getfield(L, 1, "reuseport");
  int reuseport = lua_toboolean(L, -1);
  lua_pop(L, 4);

  lua_getfield(L, 1, "memory_limit_mb"); /* caps the whole Lua state */
  lua_Integer mem = luaL_optinteger(L, -1, 0);
  luaL_argcheck(L, mem >= 0, 1, "memory_limit_mb must not be negative");
  lua_pop(L, 1);
  ty_server *s = new_server(L, 1);
  if (mem > 0)
    ty_alloc_set_limit(L, (size_t)mem * 1024 * 1024);
  uv_tcp_init(ty_loop(), &s->tcp);
  s->tcp.data = s;
  int err = bind_listen(s, host, (int)port, backlog, fd, reuseport);
  if (err) {
    uv_close((uv_handle_t *)&s->tcp, on_failed_close);
    lua_pushfstring(L, "listen on %s:%d", host, (int)port);
    return push_uv_error(L, err, lua_tostring(L, -1));
  }
  snprintf(s->host, sizeof s->host, "%s", host);
  uv_timer_init(ty_loop(), &s->sweep);
  s->sweep.data = s;
  uv_timer_start(&s->sweep, on_sweep, TY_SWEEP_INTERVAL_MS,
                 TY_SWEEP_INTERVAL_MS);
  uv_unref((uv_handle_t *)&s->sweep);
  s->handles_open = 2;
  push_server(L, s, 2); /* the handler, fetched first */
  return 1;
}

/* inject(handler, fd [, limits]) -> server: serves one in-process
 * connection on fd (one end of a socket pair) through the same connection
 * code as a real client, for tycho.test.request. The server is born closing:
 * it answers with Connection: close and ends with its connection. */
static int l_inject(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_Integer fd = luaL_checkinteger(L, 2);
  ty_server *s = new_server(L, lua_istable(L, 3) ? 3 : 0);
  s->closing = 1;
  snprintf(s->host, sizeof s->host, "test");
  push_server(L, s, 1);
  int err = ty_conn_open_pipe(s, (uv_file)fd);
  if (err)
    return push_uv_error(L, err, "inject");
  return 1;
}

static ty_server *check_server(lua_State *L) {
  server_box *b = luaL_checkudata(L, 1, SERVER_MT);
  return b->s;
}

/* server:close([force [, lazy]]) stops accepting; requests in flight
 * finish; lazy leaves idle keep-alive connections to end by themselves. */
static int l_close(lua_State *L) {
  ty_server *s = check_server(L);
  server_close(s, lua_toboolean(L, 2), lua_toboolean(L, 3));
  maybe_closed(s);
  return 0;
}

/* server:wait_closed() awaits the end of the last connection. */
static int l_wait_closed(lua_State *L) {
  ty_server *s = check_server(L);
  if (s->closed)
    return 0;
  uint64_t tok = ty_task_prepare(L);
  if (s->close_waiters_ref == LUA_NOREF) {
    lua_newtable(L);
    s->close_waiters_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->close_waiters_ref);
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1) + 1;
  lua_pushthread(L);
  lua_rawseti(L, -2, n);
  lua_pushinteger(L, (lua_Integer)tok);
  lua_rawseti(L, -2, -n);
  lua_pop(L, 1);
  return ty_task_park(L, NULL, NULL);
}

/* server:set_handler(fn) -> generation: new requests use fn. */
static int l_set_handler(lua_State *L) {
  ty_server *s = check_server(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (s->closing)
    return luaL_error(L, "server is closed");
  lua_pushvalue(L, 2);
  lua_rawseti(L, LUA_REGISTRYINDEX, s->handler_ref);
  lua_pushinteger(L, ++s->generation);
  return 1;
}

/* server:set_log(fn | nil): fn(remote, method, url, http_minor, status,
 * bytes, ns, generation) runs after every response (the access log). */
static int l_set_log(lua_State *L) {
  ty_server *s = check_server(L);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, s->log_ref);
  s->log_ref = LUA_NOREF;
  if (lua_isfunction(L, 2) && !s->closed) {
    lua_pushvalue(L, 2);
    s->log_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

static int l_index(lua_State *L) {
  ty_server *s = check_server(L);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "port") == 0)
    lua_pushinteger(L, s->port);
  else if (strcmp(k, "host") == 0)
    lua_pushstring(L, s->host);
  else if (strcmp(k, "connections") == 0)
    lua_pushinteger(L, (lua_Integer)s->nconns);
  else if (strcmp(k, "generation") == 0)
    lua_pushinteger(L, s->generation);
  else if (strcmp(k, "closed") == 0)
    lua_pushboolean(L, s->closing);
  else {
    luaL_getmetatable(L, SERVER_MT);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}

static int l_gc(lua_State *L) {
  server_box *b = luaL_checkudata(L, 1, SERVER_MT);
  /* Only reachable here once closed (open servers anchor themselves), or
   * while the state closes, after teardown closed every handle. */
  if (b->s && (b->s->closed || ty_host_get()->L != L)) {
    ty_gzip_conf_free(b->s->gzip);
    free(b->s);
    b->s = NULL;
  }
  return 0;
}

static int l_tostring(lua_State *L) {
  ty_server *s = check_server(L);
  lua_pushfstring(L, "http server (%s:%d%s)", s->host, s->port,
                  s->closing ? ", closed" : "");
  return 1;
}

int ty_http_server_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"close", l_close},
                                     {"wait_closed", l_wait_closed},
                                     {"set_handler", l_set_handler},
                                     {"set_log", l_set_log},
                                     {NULL, NULL}};
  luaL_newmetatable(L, SERVER_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "methods");
  lua_pushcfunction(L, l_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  ty_http_message_open(L);
  lua_pushcfunction(L, l_listen);
  lua_setfield(L, -2, "listen");
  lua_pushcfunction(L, l_inject);
  lua_setfield(L, -2, "inject");
  return 1;
}
