/* main.c: kept tiny, like lua.c. Creates the host, runs the command line
 * (lua/tycho/cli.lua) as the main task, runs the loop, tears down in order
 * and returns the exit code.
 */
#include "core/host.h"
#include "core/task.h"

#include <lauxlib.h>
#include <stdio.h>

/* The main task's result is the process's exit code; an error in it (which
 * cli.lua normally catches itself) ends the process with 1. */
static void main_done(ty_task *t, int how, void *ud) {
  (void)ud;
  lua_State *co = ty_task_thread(t);
  ty_host *h = ty_host_get();
  if (how == TY_TASK_OK) {
    int code = (int)lua_tointeger(co, 1);
    if (code != 0 && !h->exit_requested)
      ty_host_exit(code);
    return;
  }
  if (h->exit_requested)
    return; /* os.exit unwinding */
  lua_pushvalue(co, -1);
  lua_xmove(co, h->L, 1);
  ty_report(h->L, "error");
  ty_host_exit(1);
}

/* Runs in protected mode: a failure here (out of memory, a broken embedded
 * library) is reported instead of aborting. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "tycho.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  ty_task *t = ty_task_new(L, 1, "main");
  ty_task_on_done(t, main_done, NULL);
  ty_task_run(t);
  return 0;
}

int main(int argc, char **argv) {
  if (ty_host_init() != 0) {
    fprintf(stderr, "tycho: cannot create the Lua state or the loop\n");
    return 1;
  }
  lua_State *L = ty_host_get()->L;
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int code = 1;
  if (ty_pcall(L, 2, 0) != LUA_OK)
    ty_report(L, "startup");
  else
    code = ty_host_run();
  ty_host_close();
  return code;
}
