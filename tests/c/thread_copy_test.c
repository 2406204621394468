/* C tests for the value copier of tycho.thread.run (src/thread/copy.c):
 * values encoded in one Lua state come out the same in another; shared
 * tables and cycles keep their shape; refused values name their place; a
 * truncated buffer is an error, never a crash. */
#include "thread/thread.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* Runs Lua code in L leaving its results on the stack. */
static int eval(lua_State *L, const char *code) {
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, LUA_MULTRET, 0)) {
    fprintf(stderr, "eval: %s\n", lua_tostring(L, -1));
    failures++;
    return 0;
  }
  return 1;
}

static int decode_all(lua_State *L) {
  ty_copybuf *b = lua_touserdata(L, 1);
  int n = (int)lua_tointeger(L, 2);
  size_t pos = 0;
  lua_settop(L, 0);
  return ty__copy_decode(L, b, &pos, n);
}

/* Decodes n values from b onto L under a protected call; 0 on success. */
static int decode(lua_State *L, ty_copybuf *b, int n) {
  lua_pushcfunction(L, decode_all);
  lua_pushlightuserdata(L, b);
  lua_pushinteger(L, n);
  return lua_pcall(L, 2, n, 0);
}

static void test_round_trip(lua_State *A, lua_State *B) {
  lua_settop(A, 0);
  eval(A,
       "local shared = {k = 'v'}\n"
       "local t = {1, 2.5, 'three', a = shared, b = shared, [true] = false}\n"
       "t.self = t\n"
       "t.holes = {1, nil, 3, [0] = 'z', [-1] = 'm', [2^53] = 'big'}\n"
       "return 7, 7.0, nil, t, function(x) return x * 3 end");
  ty_copybuf b = {0};
  char err[200];
  int bad = -1;
  CHECK(ty__copy_encode(A, &b, 1, 5, err, sizeof err, &bad) == 0);
  CHECK(lua_gettop(A) == 5); /* encoding leaves the stack as it was */
  lua_settop(B, 0);
  CHECK(decode(B, &b, 5) == LUA_OK);
  CHECK(lua_gettop(B) == 5);
  CHECK(lua_isinteger(B, 1) && lua_tointeger(B, 1) == 7);
  CHECK(!lua_isinteger(B, 2) && lua_tonumber(B, 2) == 7.0);
  CHECK(lua_isnil(B, 3));
  lua_setglobal(B, "f");
  lua_setglobal(B, "t");
  lua_settop(B, 0);
  eval(B,
       "return t.self == t, t.a == t.b, t.a.k, t[2], t[3], t[true], f(14),"
       " t.holes[1] == 1 and t.holes[2] == nil and t.holes[3] == 3 and"
       " t.holes[0] == 'z' and t.holes[-1] == 'm' and t.holes[2^53] == 'big'");
  CHECK(lua_toboolean(B, 1));
  CHECK(lua_toboolean(B, 2));
  CHECK(strcmp(lua_tostring(B, 3), "v") == 0);
  CHECK(lua_tonumber(B, 4) == 2.5);
  CHECK(strcmp(lua_tostring(B, 5), "three") == 0);
  CHECK(lua_isboolean(B, 6) && !lua_toboolean(B, 6));
  CHECK(lua_tointeger(B, 7) == 42);
  CHECK(lua_toboolean(B, 8));
  ty__copybuf_free(&b);
}

static void test_refusals(lua_State *A) {
  lua_settop(A, 0);
  eval(A, "local up = 1\n"
          "return 'ok', {x = {io.stdout}}, function() return up end");
  ty_copybuf b = {0};
  char err[200];
  int bad = -1;
  CHECK(ty__copy_encode(A, &b, 1, 3, err, sizeof err, &bad) == -1);
  CHECK(bad == 1);
  CHECK(strcmp(err, "cannot copy a userdata value in field 'x[1]'") == 0);
  CHECK(lua_gettop(A) == 3);
  b.len = 0;
  CHECK(ty__copy_encode(A, &b, 3, 1, err, sizeof err, &bad) == -1);
  CHECK(bad == 0);
  CHECK(strstr(err, "upvalue 'up'") != NULL);
  ty__copybuf_free(&b);
}

static void test_truncated(lua_State *A, lua_State *B) {
  lua_settop(A, 0);
  eval(A, "return {list = {1, 2, 3}, name = string.rep('x', 100)}");
  ty_copybuf b = {0};
  char err[200];
  int bad;
  CHECK(ty__copy_encode(A, &b, 1, 1, err, sizeof err, &bad) == 0);
  size_t full = b.len;
  for (size_t cut = 0; cut < full; cut += 7) {
    b.len = cut;
    lua_settop(B, 0);
    int st = decode(B, &b, 1);
    CHECK(st != LUA_OK);
    if (st != LUA_OK)
      CHECK(strstr(lua_tostring(B, -1), "corrupt thread message") != NULL);
  }
  ty__copybuf_free(&b);
}

int main(void) {
  lua_State *A = luaL_newstate(), *B = luaL_newstate();
  luaL_openlibs(A);
  luaL_openlibs(B);
  test_round_trip(A, B);
  test_refusals(A);
  test_truncated(A, B);
  lua_close(A);
  lua_close(B);
  if (failures)
    fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
