/* fuzz_query.c: libFuzzer target for the request's percent decoding and
 * query parsing (src/http/message.c: ty_url_decode, ty_query_parse).
 * Checks what must hold for any input: decoding never grows the string,
 * input without escapes comes back unchanged, a decoded escape round-trips,
 * and every query value is a string or a list of strings.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

void ty_url_decode(lua_State *L, const char *s, size_t n, int plus);
void ty_query_parse(lua_State *L, const char *s, size_t n);

static lua_State *L;

static void check_decode(const char *s, size_t n, int plus) {
  ty_url_decode(L, s, n, plus);
  size_t dn;
  const char *d = lua_tolstring(L, -1, &dn);
  if (dn > n)
    abort();
  if (!memchr(s, '%', n) && !(plus && memchr(s, '+', n)) &&
      (dn != n || memcmp(d, s, n) != 0))
    abort();
  lua_pop(L, 1);
}

/* Encodes every byte as %XX and checks decoding gives the bytes back. */
static void check_round_trip(const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  char *enc = malloc(n * 3 + 1);
  if (!enc)
    return;
  for (size_t i = 0; i < n; i++) {
    enc[i * 3] = '%';
    enc[i * 3 + 1] = hex[(unsigned char)s[i] >> 4];
    enc[i * 3 + 2] = hex[(unsigned char)s[i] & 15];
  }
  ty_url_decode(L, enc, n * 3, 1);
  size_t dn;
  const char *d = lua_tolstring(L, -1, &dn);
  if (dn != n || memcmp(d, s, n) != 0)
    abort();
  lua_pop(L, 1);
  free(enc);
}

static void check_query(const char *s, size_t n) {
  ty_query_parse(L, s, n);
  int t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      abort();
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
      if (len < 2)
        abort(); /* a repeated key has two values at least */
      for (lua_Integer i = 1; i <= len; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
          abort();
        lua_pop(L, 1);
      }
    } else if (lua_type(L, -1) != LUA_TSTRING) {
      abort();
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!L)
    L = luaL_newstate();
  const char *s = (const char *)data;
  check_decode(s, size, 0);
  check_decode(s, size, 1);
  if (size < 4096)
    check_round_trip(s, size);
  check_query(s, size);
  if (lua_gettop(L) != 0)
    abort();
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
