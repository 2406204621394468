/* json.c: the encoding half of tycho.json in C (module tycho.json.core).
 * lua/tycho/json.lua configures a lua-cjson codec and hands its encode
 * function here; encoding then costs one protected call into cjson and a
 * scan for the empty-array marker, with no Lua function around it. That is
 * on the path of every JSON response (res:json, returned tables).
 */
#define _GNU_SOURCE /* memmem */
#include "core/json.h"

#include <lauxlib.h>
#include <string.h>

/* The marker tycho.json.empty_array: a string no valid UTF-8 text contains.
 * cjson encodes it as a quoted string, which is swapped for "[]". */
#define EMPTY "\xff\xfe[]\xff"
#define EMPTY_QUOTED "\"" EMPTY "\""

/* Registry reference to the cjson codec's encode function. An integer key:
 * a light userdata key costs a hash lookup in the registry per response.
 * Only the host state opens this module. */
static int codec_ref = LUA_NOREF;

/* Replaces every quoted marker in s[0..n) with [] and pushes the result.
 * [-0, +1, m] */
static void swap_markers(lua_State *L, const char *s, size_t n) {
  const size_t mlen = sizeof EMPTY_QUOTED - 1;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  const char *end = s + n;
  const char *hit;
  while ((hit = memmem(s, (size_t)(end - s), EMPTY_QUOTED, mlen)) != NULL) {
    luaL_addlstring(&b, s, (size_t)(hit - s));
    luaL_addlstring(&b, "[]", 2);
    s = hit + mlen;
  }
  luaL_addlstring(&b, s, (size_t)(end - s));
  luaL_pushresult(&b);
}

void ty_json_encode(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_rawgeti(L, LUA_REGISTRYINDEX, codec_ref) != LUA_TFUNCTION)
    luaL_error(L, "tycho.json is not loaded");
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    /* cjson's message has no position (its caller is C): give it the
     * caller's, as error(msg, 2) does in Lua. */
    luaL_where(L, 1);
    lua_insert(L, -2);
    if (!lua_isstring(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "(error object is not a string)");
    }
    lua_concat(L, 2);
    lua_error(L);
  }
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  /* the marker holds '\xff', which texts rarely do: one memchr rules
   * most of them out */
  if (memchr(s, '\xff', n) &&
      memmem(s, n, EMPTY_QUOTED, sizeof EMPTY_QUOTED - 1)) {
    swap_markers(L, s, n);
    lua_remove(L, -2);
  }
}

/* encode(value) -> text (tycho.json.encode) */
static int l_encode(lua_State *L) {
  lua_settop(L, 1);
  ty_json_encode(L, 1);
  return 1;
}

/* set_codec(encode): the cjson codec function encode() calls. */
static int l_set_codec(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  if (codec_ref != LUA_NOREF) /* tycho.json loaded again */
    luaL_unref(L, LUA_REGISTRYINDEX, codec_ref);
  codec_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int ty_json_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"encode", l_encode}, {"set_codec", l_set_codec}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  lua_pushliteral(L, EMPTY);
  lua_setfield(L, -2, "empty_array");
  return 1;
}
