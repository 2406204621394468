/* ops.c: what running the HTTP server in production needs from C. Owns the
 * process-wide request statistics (status classes, a latency histogram,
 * open connections) that tycho.http.metrics renders, the per-response hook
 * that feeds them and the access log, and SO_REUSEPORT listening sockets
 * (libuv 1.44 has no flag for it) for `tycho run --workers N`.
 *
 * The counters are plain integers bumped once per finished response: cheap
 * enough to be always on. The access log costs a Lua call per response, so
 * it runs only on servers that set one (server:set_log).
 */
#include "http/http.h"

#include <errno.h>
#include <lauxlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Upper bounds (seconds) of the latency histogram's buckets; +Inf follows.
 * Prometheus's client defaults, with a finer start for a fast server. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBOUNDS (sizeof bounds / sizeof bounds[0])

static struct {
  uint64_t by_class[6];          /* [1..5] = 1xx..5xx, [0] anything else */
  uint64_t buckets[NBOUNDS + 1]; /* not cumulative; the last is +Inf */
  uint64_t count;
  double seconds;
} stats;

uint64_t ty_http_open_conns;

/* ---------------------------------------------------------------------- */
/* The per-response hook                                                  */

/* Calls the server's access log hook with plain values (no req object, so
 * error responses the handler never saw are logged too):
 * fn(remote, method, url, http_minor, status, bytes, ns, generation). */
static void call_log(ty_conn *c, ty_req *r, int status, uint64_t ns) {
  lua_State *L = ty_host_get()->L;
  if (!L || ty_host_get()->stopping)
    return;
  char addr[64];
  int port;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->srv->log_ref);
  lua_pushstring(L, ty_conn_remote(c, addr, sizeof addr, &port));
  if (r->headers_done)
    lua_pushstring(L, llhttp_method_name((llhttp_method_t)r->method));
  else
    lua_pushliteral(L, "-");
  lua_pushlstring(L, r->url_len ? r->head.p : "", r->url_len);
  lua_pushinteger(L, r->http_minor);
  lua_pushinteger(L, status);
  lua_pushinteger(L, (lua_Integer)r->res_bytes);
  lua_pushinteger(L, (lua_Integer)ns);
  lua_pushinteger(L, r->generation);
  if (ty_pcall(L, 8, 0) != LUA_OK)
    ty_report(L, "access log");
  lua_settop(L, top);
}

void ty_http_finished(ty_conn *c, ty_req *r, int status) {
  uint64_t ns = uv_hrtime() - r->start_ns;
  double s = (double)ns / 1e9;
  int cls = status / 100;
  stats.by_class[cls >= 1 && cls <= 5 ? cls : 0]++;
  size_t i = 0;
  while (i < NBOUNDS && s > bounds[i])
    i++;
  stats.buckets[i]++;
  stats.count++;
  stats.seconds += s;
  if (c->srv && c->srv->log_ref != LUA_NOREF)
    call_log(c, r, status, ns);
}

/* ---------------------------------------------------------------------- */
/* Lua API                                                                */

/* stats() -> {requests = {["2xx"] = n, ...}, buckets = {{le, count}...},
 * count, seconds, connections}; bucket counts are cumulative, as in the
 * Prometheus exposition format. */
static int l_stats(lua_State *L) {
  static const char *const names[] = {"other", "1xx", "2xx",
                                      "3xx",   "4xx", "5xx"};
  lua_createtable(L, 0, 5);
  lua_createtable(L, 0, 6);
  for (int i = 0; i < 6; i++) {
    lua_pushinteger(L, (lua_Integer)stats.by_class[i]);
    lua_setfield(L, -2, names[i]);
  }
  lua_setfield(L, -2, "requests");
  lua_createtable(L, NBOUNDS + 1, 0);
  uint64_t cum = 0;
  for (size_t i = 0; i <= NBOUNDS; i++) {
    cum += stats.buckets[i];
    lua_createtable(L, 2, 0);
    if (i < NBOUNDS)
      lua_pushnumber(L, bounds[i]);
    else
      lua_pushliteral(L, "+Inf");
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)cum);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "buckets");
  lua_pushinteger(L, (lua_Integer)stats.count);
  lua_setfield(L, -2, "count");
  lua_pushnumber(L, stats.seconds);
  lua_setfield(L, -2, "seconds");
  lua_pushinteger(L, (lua_Integer)ty_http_open_conns);
  lua_setfield(L, -2, "connections");
  return 1;
}

static int push_errno(lua_State *L, int err, const char *what) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s: %s", what, uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

/* Binds a new SO_REUSEPORT TCP socket (not listening yet) to addr. */
static int reuseport_bind(const struct sockaddr *addr, int *out) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int on = 1;
  socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
      bind(fd, addr, len) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  *out = fd;
  return 0;
}

int ty_http_reuseport_socket(const char *host, int port, int *fd) {
  struct sockaddr_storage addr;
  int err = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
  if (err)
    err = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
  if (err)
    return err;
  return reuseport_bind((struct sockaddr *)&addr, fd);
}

/* reuseport_socket(host, port) -> fd, port | nil, message, code: a bound,
 * close-on-exec SO_REUSEPORT socket for the supervisor to hand to workers
 * (core.listen{fd = ...} listens on it). Close it with uv.fs_close. */
static int l_reuseport_socket(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port must be 0-65535");
  if (strcmp(host, "localhost") == 0)
    host = "127.0.0.1";
  int fd;
  int err = ty_http_reuseport_socket(host, (int)port, &fd);
  if (err) {
    lua_pushfstring(L, "bind %s:%d", host, (int)port);
    return push_errno(L, err, lua_tostring(L, -1));
  }
  struct sockaddr_storage ss;
  socklen_t n = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &n);
  int bound =
      ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
  lua_pushinteger(L, fd);
  lua_pushinteger(L, bound);
  return 2;
}

int ty_http_ops_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"stats", l_stats},
                                 {"reuseport_socket", l_reuseport_socket},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
