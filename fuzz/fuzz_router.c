/* fuzz_router.c: libFuzzer target for the router (lua/tycho/http/router.lua).
 * The input's lines are route patterns and request paths; the checks live
 * in fuzz_router.lua, loaded next to this file, whose errors abort the run.
 */
#include "core/host.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_DIR
#define FUZZ_DIR "fuzz"
#endif

static int check_ref = LUA_NOREF;

/* libFuzzer sees only C coverage: a line hook turns the Lua lines the
 * router runs into extra coverage counters, so inputs that take new paths
 * through router.lua are kept. */
__attribute__((section(
    "__libfuzzer_extra_counters"))) static unsigned char lua_lines[1 << 12];

static void on_line(lua_State *L, lua_Debug *ar) {
  static unsigned prev;
  lua_getinfo(L, "S", ar);
  unsigned loc = (unsigned)(((uintptr_t)ar->source >> 4) * 31u +
                            (unsigned)ar->currentline);
  lua_lines[(loc ^ (prev >> 1)) & (sizeof lua_lines - 1)]++;
  prev = loc;
}

static void setup(lua_State *L) {
  if (luaL_loadfile(L, FUZZ_DIR "/fuzz_router.lua") != LUA_OK ||
      ty_pcall(L, 0, 1) != LUA_OK) {
    fprintf(stderr, "fuzz_router: %s\n", lua_tostring(L, -1));
    abort();
  }
  check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_sethook(L, on_line, LUA_MASKLINE, 0);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (check_ref == LUA_NOREF) {
    if (ty_host_init() != 0)
      abort();
    setup(ty_host_get()->L);
  }
  lua_State *L = ty_host_get()->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (ty_pcall(L, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_router: %s\n", lua_tostring(L, -1));
    abort();
  }
  static unsigned runs;
  if (++runs % 256 == 0)
    lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
