/* luac.c: a build-time tool. Compiles each Lua file of lua/ to bytecode
 * (keeping line info, so tracebacks still name lua/tycho/x.lua:N) for
 * embedding: loading bytecode at startup costs a fraction of parsing.
 * usage: tycho_luac SRC_DIR OUT_DIR rel/path.lua...
 * A syntax error fails the build with the compiler's message. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return fwrite(p, 1, n, (FILE *)ud) == n ? 0 : 1;
}

/* Creates the directories leading to path. */
static void make_parents(char *path) {
  for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
    *s = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
      perror(path);
    *s = '/';
  }
}

static int compile(lua_State *L, const char *src, const char *out,
                   const char *rel) {
  char in_path[4096], out_path[4096], chunk[4096];
  snprintf(in_path, sizeof in_path, "%s/%s", src, rel);
  snprintf(out_path, sizeof out_path, "%s/%s", out, rel);
  snprintf(chunk, sizeof chunk, "@lua/%s", rel);
  FILE *f = fopen(in_path, "rb");
  if (!f) {
    perror(in_path);
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    luaL_addlstring(&b, buf, n);
  fclose(f);
  luaL_pushresult(&b);
  size_t len;
  const char *text = lua_tolstring(L, -1, &len);
  if (luaL_loadbufferx(L, text, len, chunk, "t") != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  make_parents(out_path);
  FILE *o = fopen(out_path, "wb");
  if (!o) {
    perror(out_path);
    return 1;
  }
  int bad = lua_dump(L, writer, o, 0) != 0;
  bad |= fclose(o) != 0;
  lua_settop(L, 0);
  return bad;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s SRC_DIR OUT_DIR rel/path.lua...\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  int bad = 0;
  for (int i = 3; i < argc; i++)
    bad |= compile(L, argv[1], argv[2], argv[i]);
  lua_close(L);
  return bad;
}
