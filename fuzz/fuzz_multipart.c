/* fuzz_multipart.c: libFuzzer target for the multipart/form-data parser
 * (src/http/multipart.c). The first input byte picks the piece size, the
 * rest is the body, fed under the boundary "b" in pieces of that size.
 * Checks what must hold for any input: the parser ends (done or an error,
 * after finish) within a bound of steps, events come in a legal order
 * (data and end only inside a part), parts carry a string name and
 * content_type, and the content handed out never exceeds the input.
 * A second run feeds the whole body at once and must give the same
 * outcome and the same content bytes: split points do not matter.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int ty_multipart_open(lua_State *L);

static lua_State *L;

typedef struct {
  int done;       /* 1: "done", 0: an error */
  size_t content; /* bytes of part content handed out */
  uint32_t sum;   /* a checksum over those bytes, in order */
  size_t parts;
} outcome;

/* Calls parser:method(arg?) with the parser at index p. */
static int call(int p, const char *method, const char *arg, size_t n) {
  lua_getfield(L, p, method);
  lua_pushvalue(L, p);
  int nargs = 1;
  if (arg) {
    lua_pushlstring(L, arg, n);
    nargs = 2;
  }
  lua_call(L, nargs, 2);
  return lua_gettop(L) - 1;
}

static void check_part(int info) {
  if (lua_getfield(L, info, "name") != LUA_TSTRING ||
      lua_getfield(L, info, "content_type") != LUA_TSTRING ||
      lua_getfield(L, info, "headers") != LUA_TTABLE)
    abort();
  lua_pop(L, 3);
}

static outcome run(const char *s, size_t n, size_t piece) {
  outcome o = {0, 0, 0, 0};
  lua_getfield(L, 1, "parser");
  lua_pushliteral(L, "b");
  lua_call(L, 1, 1);
  int p = lua_gettop(L);
  size_t fed = 0, steps = 0;
  int finished = 0, in_part = 0;
  for (;; steps++) {
    if (steps > 4 * n + 64)
      abort(); /* every step feeds or hands out something */
    int ev = call(p, "next", NULL, 0);
    const char *e = lua_tostring(L, ev);
    if (!e) { /* nil, message */
      if (!lua_isstring(L, ev + 1))
        abort();
      break;
    }
    if (strcmp(e, "more") == 0) {
      if (finished)
        abort(); /* after finish there is nothing more to wait for */
      if (fed < n) {
        size_t k = n - fed < piece ? n - fed : piece;
        lua_settop(L, p);
        call(p, "feed", s + fed, k);
        fed += k;
      } else {
        lua_settop(L, p);
        call(p, "finish", NULL, 0);
        finished = 1;
      }
    } else if (strcmp(e, "part") == 0) {
      if (in_part)
        abort();
      check_part(ev + 1);
      in_part = 1;
      o.parts++;
    } else if (strcmp(e, "data") == 0) {
      size_t dn;
      const unsigned char *d =
          (const unsigned char *)lua_tolstring(L, ev + 1, &dn);
      if (!in_part || !d || dn == 0)
        abort();
      for (size_t i = 0; i < dn; i++)
        o.sum = o.sum * 31 + d[i];
      o.content += dn;
    } else if (strcmp(e, "end") == 0) {
      if (!in_part)
        abort();
      in_part = 0;
    } else if (strcmp(e, "done") == 0) {
      if (in_part)
        abort();
      o.done = 1;
      break;
    } else {
      abort();
    }
    lua_settop(L, p);
  }
  if (o.content > n)
    abort();
  lua_settop(L, 1);
  return o;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!L) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "multipart", ty_multipart_open, 0);
    lua_settop(L, 1);
  }
  if (size == 0)
    return 0;
  size_t piece = (size_t)data[0] % 17 + 1;
  const char *s = (const char *)data + 1;
  outcome a = run(s, size - 1, piece);
  outcome b = run(s, size - 1, size);
  /* Whole or in pieces: the same outcome. An error may be found at a
   * different point only in how much content was handed out before it. */
  if (a.done != b.done || (a.done && (a.content != b.content ||
                                      a.sum != b.sum || a.parts != b.parts)))
    abort();
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
