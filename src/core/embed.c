/* embed.c: the Lua library under lua/, compiled into the binary by
 * cmake/embed.cmake, and the package searcher that finds it. With
 * TYCHO_LUA_DEV=dir the files are read from dir instead, for hacking
 * without rebuilding.
 */
#include "host.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name; /* module name, e.g. "tycho.http.router" */
  const char *path; /* chunk name, e.g. "@lua/tycho/http/router.lua" */
  const unsigned char *data;
  size_t len;
} ty_embedded;

extern const ty_embedded ty_embedded_files[];

static const ty_embedded *find(const char *name) {
  for (const ty_embedded *e = ty_embedded_files; e->name; e++)
    if (strcmp(e->name, name) == 0)
      return e;
  return NULL;
}

static int searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const ty_embedded *e = find(name);
  if (!e) {
    lua_pushfstring(L, "no embedded module '%s'", name);
    return 1;
  }
  if (luaL_loadbuffer(L, (const char *)e->data, e->len, e->path) != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, e->path + 1);
  return 2;
}

/* The embedded searcher goes right after preload, so the binary's own
 * library wins over anything with the same name on package.path. */
static void add_searcher(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  int n = (int)lua_rawlen(L, -1);
  for (int i = n; i >= 2; i--) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcfunction(L, searcher);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}

static void prepend_dev_path(lua_State *L, const char *dir) {
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* Pushes an array of the embedded module names (the REPL completes
 * `tycho.` with the submodules not loaded yet). [-0, +1, m] */
void ty_embed_names(lua_State *L) {
  lua_newtable(L);
  for (const ty_embedded *e = ty_embedded_files; e->name; e++) {
    lua_pushstring(L, e->name);
    lua_rawseti(L, -2, (lua_Integer)(e - ty_embedded_files) + 1);
  }
}

void ty_embed_install(lua_State *L) {
  const char *dev = getenv("TYCHO_LUA_DEV");
  if (dev && *dev)
    prepend_dev_path(L, dev);
  else
    add_searcher(L);
}
