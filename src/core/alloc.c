/* alloc.c: a Lua allocator that counts the bytes the state holds and
 * refuses to grow past a cap, so a handler that builds a huge table or
 * string fails with "not enough memory" (a Lua error: its request answers
 * 500) instead of the kernel killing the process.
 *
 * Only code running inside a task is refused: there every allocation is
 * under lua_resume's protection, so the refusal becomes a Lua error in that
 * task. The host's own bookkeeping between tasks (building a request
 * object, a traceback, a close callback) runs unprotected, where a failed
 * allocation would abort the process; it may go over the cap, by the few
 * objects it needs, until the failed task's memory is collected.
 *
 * The allocator is installed on demand with lua_setallocf (the default one
 * is realloc/free, so blocks move between them freely), counting from what
 * the state holds at that moment.
 */
#include "core/alloc.h"
#include "core/task.h"

#include <lauxlib.h>
#include <stdlib.h>

static size_t used, limit;
static uint64_t refused;
static int installed;

static void *capped(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (ptr == NULL)
    osize = 0; /* then osize is a type tag, not a size */
  if (nsize == 0) {
    free(ptr);
    used -= osize;
    return NULL;
  }
  if (limit && nsize > osize && used - osize + nsize > limit &&
      ty_task_running_thread() != NULL) {
    refused++;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p)
    used = used - osize + nsize;
  return p;
}

void ty_alloc_set_limit(lua_State *L, size_t bytes) {
  if (!installed) {
    used =
        (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
    lua_setallocf(L, capped, NULL);
    installed = 1;
  }
  limit = bytes;
}

size_t ty_alloc_limit(void) { return limit; }
size_t ty_alloc_used(void) { return installed ? used : 0; }
uint64_t ty_alloc_refused(void) { return refused; }

/* set_limit(bytes | nil) */
static int l_set_limit(lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, n >= 0, 1, "limit must not be negative");
  ty_alloc_set_limit(L, (size_t)n);
  return 0;
}

/* stats() -> {limit=, used=, refused=} (used is 0 until a limit was set) */
static int l_stats(lua_State *L) {
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)limit);
  lua_setfield(L, -2, "limit");
  lua_pushinteger(L, (lua_Integer)ty_alloc_used());
  lua_setfield(L, -2, "used");
  lua_pushinteger(L, (lua_Integer)refused);
  lua_setfield(L, -2, "refused");
  return 1;
}

int ty_memory_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"set_limit", l_set_limit}, {"stats", l_stats}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
