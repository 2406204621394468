/* host.c: the process's one Lua state and one libuv loop. Owns creation
 * (libraries, luv on our loop, preloads), the protected-call helpers and the
 * error reporter, signal handling, os.exit, and the fixed shutdown order:
 * stop entering Lua, close C handles, close luv handles, drain the loop,
 * close the loop, and only then close the Lua state.
 */
#include "host.h"
#include "task.h"

#include <lauxlib.h>
#include <lualib.h>
#include <luv/luv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llhttp.h"

int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);
#define TY_MODULE(name, fn) int fn(lua_State *L);
#include "modules.def"
#undef TY_MODULE

static ty_host host;
static char exit_sentinel; /* error value raised by os.exit */

ty_host *ty_host_get(void) { return &host; }
uv_loop_t *ty_loop(void) { return &host.loop; }

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */

int ty_traceback(lua_State *L) {
  if (lua_touserdata(L, 1) == &exit_sentinel)
    return 1;
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg =
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int ty_pcall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, ty_traceback);
  lua_insert(L, base);
  int st = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return st;
}

void ty_report(lua_State *L, const char *what) {
  if (lua_touserdata(L, -1) == &exit_sentinel) {
    lua_pop(L, 1);
    return;
  }
  const char *msg = luaL_tolstring(L, -1, NULL);
  fprintf(stderr, "tycho: %s: %s\n", what, msg);
  fflush(stderr);
  lua_pop(L, 2);
}

/* luv calls every Lua callback through this: errors are reported and the
 * process goes on (luv's default would exit). Mirrors luv_cfpcall's
 * contract: result count on success, a negative status on error. */
static int luv_callback_pcall(lua_State *L, int nargs, int nresults,
                              int flags) {
  (void)flags;
  int top = lua_gettop(L) - nargs - 1;
  int st = ty_pcall(L, nargs, nresults);
  if (st != LUA_OK) {
    ty_report(L, "callback failed");
    return -st;
  }
  return nresults == LUA_MULTRET ? lua_gettop(L) - top : nresults;
}

/* ---------------------------------------------------------------------- */
/* Exit and signals                                                       */

void ty_host_exit(int code) {
  host.exit_code = code;
  host.exit_requested = 1;
  uv_stop(&host.loop);
}

/* os.exit([code]): tears down cleanly instead of exit()ing mid-callback. */
static int l_os_exit(lua_State *L) {
  int code;
  if (lua_isboolean(L, 1))
    code = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else
    code = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  ty_host_exit(code);
  lua_pushlightuserdata(L, &exit_sentinel);
  return lua_error(L);
}

/* The Lua side decides what a signal means (graceful stop of a server,
 * cancel of a REPL line); without a taker, INT/TERM end the process. */
static void on_signal(uv_signal_t *h, int signum) {
  lua_State *L = host.L;
  int handled = 0;
  if (lua_getfield(L, LUA_REGISTRYINDEX, "tycho.signal_hook") ==
      LUA_TFUNCTION) {
    lua_pushstring(L, signum == SIGINT    ? "SIGINT"
                      : signum == SIGTERM ? "SIGTERM"
                                          : "SIGHUP");
    if (ty_pcall(L, 1, 1) == LUA_OK)
      handled = lua_toboolean(L, -1), lua_pop(L, 1);
    else
      ty_report(L, "signal handler failed");
  } else {
    lua_pop(L, 1);
  }
  (void)h;
  if (!handled && signum != SIGHUP)
    ty_host_exit(128 + signum);
}

static int l_set_signal_hook(lua_State *L) {
  if (!lua_isnil(L, 1))
    luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "tycho.signal_hook");
  return 0;
}

static void start_signal(uv_signal_t *s, int signum) {
  uv_signal_init(&host.loop, s);
  uv_signal_start(s, on_signal, signum);
  uv_unref((uv_handle_t *)s);
}

/* ---------------------------------------------------------------------- */
/* The core module: versions, exit, hooks                                 */

static int l_versions(lua_State *L) {
  lua_createtable(L, 0, 4);
  lua_pushliteral(L, TY_VERSION);
  lua_setfield(L, -2, "tycho");
  lua_pushliteral(L, LUA_RELEASE);
  lua_setfield(L, -2, "lua");
  lua_pushstring(L, uv_version_string());
  lua_setfield(L, -2, "libuv");
  lua_pushfstring(L, "%d.%d.%d", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
                  LLHTTP_VERSION_PATCH);
  lua_setfield(L, -2, "llhttp");
  return 1;
}

/* luv's hrtime is a float; an integer keeps every nanosecond however long
 * the machine has been up. */
static int l_hrtime(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_hrtime());
  return 1;
}

static int l_exit(lua_State *L) {
  ty_host_exit((int)luaL_checkinteger(L, 1));
  return 0;
}

static int l_exit_code(lua_State *L) {
  lua_pushinteger(L, host.exit_code);
  return 1;
}

int ty_core_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"versions", l_versions},
                                   {"exit", l_exit},
                                   {"hrtime", l_hrtime},
                                   {"exit_code", l_exit_code},
                                   {"set_signal_hook", l_set_signal_hook},
                                   {NULL, NULL}};
  ty_task_open(L); /* the task functions form the base of the table */
  luaL_setfuncs(L, funcs, 0);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                             */

void ty_host_track(ty_closer *c) {
  c->next = host.closers.next;
  c->prev = &host.closers;
  host.closers.next->prev = c;
  host.closers.next = c;
}

void ty_host_untrack(ty_closer *c) {
  if (!c->next)
    return;
  c->prev->next = c->next;
  c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

static void preload(lua_State *L, const char *name, lua_CFunction f) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

int ty_host_init(void) {
  signal(SIGPIPE, SIG_IGN);
  if (uv_loop_init(&host.loop) != 0)
    return -1;
  host.closers.next = host.closers.prev = &host.closers;
  lua_State *L = luaL_newstate();
  if (!L)
    return -1;
  host.L = L;
  /* New threads copy the main thread's extra space: it must read "no task". */
  *(void **)lua_getextraspace(L) = NULL;
  luaL_openlibs(L);
  luv_set_loop(L, &host.loop);
  luv_set_callback(L, luv_callback_pcall);
  preload(L, "luv", luaopen_luv);
  preload(L, "cjson", luaopen_cjson);
  preload(L, "cjson.safe", luaopen_cjson_safe);
#define TY_MODULE(name, fn) preload(L, name, fn);
#include "modules.def"
#undef TY_MODULE
  lua_getglobal(L, "os");
  lua_pushcfunction(L, l_os_exit);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  ty_embed_install(L);
  start_signal(&host.sigint, SIGINT);
  start_signal(&host.sigterm, SIGTERM);
  start_signal(&host.sighup, SIGHUP);
  return 0;
}

int ty_host_run(void) {
  while (!host.exit_requested && uv_run(&host.loop, UV_RUN_DEFAULT) != 0)
    ;
  return host.exit_code;
}

static const char close_luv_handles[] =
    "local uv = require 'luv'\n"
    "uv.walk(function(h) if not h:is_closing() then h:close() end end)\n";

static void close_c_handles(void) {
  while (host.closers.next != &host.closers) {
    ty_closer *c = host.closers.next;
    ty_host_untrack(c);
    c->close(c);
  }
  uv_close((uv_handle_t *)&host.sigint, NULL);
  uv_close((uv_handle_t *)&host.sigterm, NULL);
  uv_close((uv_handle_t *)&host.sighup, NULL);
}

void ty_host_close(void) {
  lua_State *L = host.L;
  host.stopping = 1;
  close_c_handles();
  /* Our close callbacks must run before luv walks the loop: luv assumes
   * every handle it sees is its own. The first turn may only clear a
   * pending uv_stop, so take two. */
  uv_run(&host.loop, UV_RUN_NOWAIT);
  uv_run(&host.loop, UV_RUN_NOWAIT);
  if (luaL_loadstring(L, close_luv_handles) != LUA_OK ||
      ty_pcall(L, 0, 0) != LUA_OK)
    ty_report(L, "shutdown");
  while (uv_run(&host.loop, UV_RUN_DEFAULT) != 0)
    ;
  if (uv_loop_close(&host.loop) != 0)
    fprintf(stderr, "tycho: shutdown: handles still open on the loop\n");
  /* Task structs outlive the state: handle finalizers still point at them. */
  host.L = NULL;
  lua_close(L);
  ty_task_shutdown();
}
