/* copy.c: moves Lua values between two Lua states that never touch each
 * other (the host's state and a worker state of tycho.thread.run) through a
 * flat byte buffer. Encoding reads one state; decoding, later and possibly
 * on another OS thread, rebuilds the values in the other state.
 *
 * Copied: nil, booleans, integers and floats (kept apart), strings, tables
 * (keys and values; shared subtables and cycles keep their shape through
 * back-references; metatables are not copied) and Lua functions whose only
 * upvalue is _ENV (as bytecode with debug info, rebound to the receiving
 * state's globals). Anything else is refused with a message naming where
 * the value sits ("field 'a.b'").
 */
#include "thread.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tags, one byte each, before the value's bytes. */
enum {
  T_NIL = 'n',
  T_FALSE = 'f',
  T_TRUE = 't',
  T_INT = 'i',
  T_NUM = 'd',
  T_STR = 's',
  T_TABLE = '{',
  T_END = '}',
  T_REF = 'r',
  T_FUNC = 'F'
};

/* ---------------------------------------------------------------------- */
/* The buffer                                                             */

int ty__copybuf_put(ty_copybuf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
      cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q)
      return -1;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

void ty__copybuf_free(ty_copybuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* ---------------------------------------------------------------------- */
/* Encoding                                                               */

typedef struct {
  lua_State *L;
  ty_copybuf *b;
  int seen; /* stack index of table -> back-reference number */
  int ntables;
  char why[160];  /* what could not be copied */
  char where[96]; /* the path to it, built while unwinding */
} enc;

static int put(enc *e, const void *p, size_t n) {
  if (ty__copybuf_put(e->b, p, n) == 0)
    return 0;
  snprintf(e->why, sizeof e->why, "not enough memory");
  return -1;
}

static int put_tag(enc *e, char tag) { return put(e, &tag, 1); }

static int refuse(enc *e, const char *fmt, const char *s) {
  snprintf(e->why, sizeof e->why, fmt, s);
  return -1;
}

/* Prepends the key at idx to e->where: "a" + ".b" -> "a.b", "[1]". */
static void note_key(enc *e, int idx) {
  char head[64];
  int t = lua_type(e->L, idx);
  if (t == LUA_TSTRING)
    snprintf(head, sizeof head, "%.40s", lua_tostring(e->L, idx));
  else if (t == LUA_TNUMBER && lua_isinteger(e->L, idx))
    snprintf(head, sizeof head, "[%lld]", (long long)lua_tointeger(e->L, idx));
  else
    snprintf(head, sizeof head, "[%s key]", luaL_typename(e->L, idx));
  char path[sizeof head + sizeof e->where + 1];
  int sep = e->where[0] && e->where[0] != '[';
  snprintf(path, sizeof path, "%s%s%s", head, sep ? "." : "", e->where);
  size_t n = strlen(path);
  if (n >= sizeof e->where)
    n = sizeof e->where - 1;
  memcpy(e->where, path, n);
  e->where[n] = '\0';
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return ty__copybuf_put(ud, p, n);
}

/* A function may cross only when it needs nothing from where it was made:
 * no upvalue other than _ENV, which the receiver binds to its globals. */
static int put_function(enc *e, int idx) {
  lua_State *L = e->L;
  if (lua_iscfunction(L, idx))
    return refuse(e, "cannot copy a C function%s", "");
  for (int i = 1;; i++) {
    const char *name = lua_getupvalue(L, idx, i);
    if (!name)
      break;
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0)
      return refuse(e,
                    "cannot copy a function with upvalue '%.60s': only "
                    "functions whose one upvalue is _ENV can be copied",
                    name);
  }
  ty_copybuf fn = {0};
  lua_pushvalue(L, idx);
  int st = lua_dump(L, dump_writer, &fn, 0);
  lua_pop(L, 1);
  uint64_t n = fn.len;
  int ok = st == 0 && put_tag(e, T_FUNC) == 0 && put(e, &n, sizeof n) == 0 &&
           put(e, fn.p, fn.len) == 0;
  ty__copybuf_free(&fn);
  if (!ok && !e->why[0])
    snprintf(e->why, sizeof e->why, "not enough memory");
  return ok ? 0 : -1;
}

static int put_value(enc *e, int idx, int depth);

/* The values t[1], t[2], ... up to the first nil; their count in *n. */
static int put_array(enc *e, int idx, int depth, uint32_t *n) {
  lua_State *L = e->L;
  while (*n < UINT32_MAX &&
         lua_rawgeti(L, idx, (lua_Integer)*n + 1) != LUA_TNIL) {
    if (put_value(e, lua_gettop(L), depth + 1)) {
      lua_pushinteger(L, (lua_Integer)*n + 1);
      note_key(e, -1);
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1);
    (*n)++;
  }
  lua_pop(L, 1);
  return 0;
}

/* The other pairs; their count in *n. */
static int put_pairs(enc *e, int idx, int depth, uint32_t narr, uint32_t *n) {
  lua_State *L = e->L;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int k = lua_gettop(L) - 1;
    if (lua_isinteger(L, k)) {
      lua_Integer i = lua_tointeger(L, k);
      if (i >= 1 && i <= (lua_Integer)narr) {
        lua_pop(L, 1); /* sent with the array part */
        continue;
      }
    }
    if (put_value(e, k, depth + 1) || put_value(e, k + 1, depth + 1)) {
      note_key(e, k);
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1);
    (*n)++;
  }
  return 0;
}

/* '{', the array and hash counts (so the receiver sizes the table once),
 * the array values, the other pairs, '}'. A table met before is sent as a
 * back-reference, which keeps shared subtables shared and ends cycles. */
static int put_table(enc *e, int idx, int depth) {
  lua_State *L = e->L;
  if (depth > TY_THREAD_DEPTH_MAX)
    return refuse(e, "tables nested more than %s levels deep",
                  TY_THREAD_DEPTH_MAX_STR);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->seen) == LUA_TNUMBER) {
    uint32_t ref = (uint32_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return put_tag(e, T_REF) || put(e, &ref, sizeof ref);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushinteger(L, ++e->ntables);
  lua_rawset(L, e->seen);
  uint32_t counts[2] = {0, 0};
  if (put_tag(e, T_TABLE) || put(e, counts, sizeof counts))
    return -1;
  size_t at = e->b->len - sizeof counts;
  luaL_checkstack(L, 4, "too many nested tables");
  if (put_array(e, idx, depth, &counts[0]) ||
      put_pairs(e, idx, depth, counts[0], &counts[1]))
    return -1;
  memcpy(e->b->p + at, counts, sizeof counts);
  return put_tag(e, T_END);
}

static int put_value(enc *e, int idx, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return put_tag(e, T_NIL);
  case LUA_TBOOLEAN:
    return put_tag(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      int64_t i = (int64_t)lua_tointeger(L, idx);
      return put_tag(e, T_INT) || put(e, &i, sizeof i);
    } else {
      double d = (double)lua_tonumber(L, idx);
      return put_tag(e, T_NUM) || put(e, &d, sizeof d);
    }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    uint64_t n = len;
    return put_tag(e, T_STR) || put(e, &n, sizeof n) || put(e, s, len);
  }
  case LUA_TTABLE:
    return put_table(e, idx, depth);
  case LUA_TFUNCTION:
    return put_function(e, idx);
  default:
    return refuse(e, "cannot copy a %s value", luaL_typename(L, idx));
  }
}

int ty__copy_encode(lua_State *L, ty_copybuf *b, int first, int n, char *err,
                    size_t errlen, int *bad) {
  enc e = {.L = L, .b = b};
  first = lua_absindex(L, first);
  lua_newtable(L);
  e.seen = lua_gettop(L);
  for (int i = 0; i < n; i++) {
    if (put_value(&e, first + i, 0) != 0) {
      lua_settop(L, e.seen - 1);
      *bad = i;
      if (e.where[0])
        snprintf(err, errlen, "%s in field '%s'", e.why, e.where);
      else
        snprintf(err, errlen, "%s", e.why);
      return -1;
    }
  }
  lua_settop(L, e.seen - 1);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Decoding                                                               */

typedef struct {
  lua_State *L;
  const char *p, *end;
  int refs; /* stack index of back-reference number -> table */
  int ntables;
} dec;

static void take(dec *d, void *out, size_t n) {
  if ((size_t)(d->end - d->p) < n)
    luaL_error(d->L, "corrupt thread message");
  memcpy(out, d->p, n);
  d->p += n;
}

static void get_value(dec *d);

static void get_table(dec *d) {
  lua_State *L = d->L;
  uint32_t counts[2];
  take(d, counts, sizeof counts);
  /* Every value takes a byte at least: larger counts are corrupt, and
   * must not size a table. */
  size_t left = (size_t)(d->end - d->p);
  if (counts[0] > left || counts[1] > left / 2)
    luaL_error(L, "corrupt thread message");
  luaL_checkstack(L, 4, "too many nested tables");
  lua_createtable(L, (int)counts[0], (int)counts[1]);
  lua_pushvalue(L, -1);
  lua_rawseti(L, d->refs, ++d->ntables);
  for (uint32_t i = 1; i <= counts[0]; i++) {
    get_value(d);
    lua_rawseti(L, -2, (lua_Integer)i);
  }
  for (uint32_t i = 0; i < counts[1]; i++) {
    get_value(d);
    get_value(d);
    lua_rawset(L, -3);
  }
  char tag;
  take(d, &tag, 1);
  if (tag != T_END)
    luaL_error(L, "corrupt thread message");
}

static void get_value(dec *d) {
  lua_State *L = d->L;
  char tag;
  take(d, &tag, 1);
  switch (tag) {
  case T_NIL:
    lua_pushnil(L);
    return;
  case T_FALSE:
    lua_pushboolean(L, 0);
    return;
  case T_TRUE:
    lua_pushboolean(L, 1);
    return;
  case T_INT: {
    int64_t i;
    take(d, &i, sizeof i);
    lua_pushinteger(L, (lua_Integer)i);
    return;
  }
  case T_NUM: {
    double x;
    take(d, &x, sizeof x);
    lua_pushnumber(L, (lua_Number)x);
    return;
  }
  case T_STR:
  case T_FUNC: {
    uint64_t n;
    take(d, &n, sizeof n);
    if ((uint64_t)(d->end - d->p) < n)
      luaL_error(L, "corrupt thread message");
    const char *s = d->p;
    d->p += n;
    if (tag == T_STR) {
      lua_pushlstring(L, s, (size_t)n);
    } else if (luaL_loadbufferx(L, s, (size_t)n, "=thread", "b") != LUA_OK) {
      lua_error(L);
    }
    return;
  }
  case T_TABLE:
    get_table(d);
    return;
  case T_REF: {
    uint32_t ref;
    take(d, &ref, sizeof ref);
    lua_rawgeti(L, d->refs, ref);
    return;
  }
  default:
    luaL_error(L, "corrupt thread message");
  }
}

int ty__copy_decode(lua_State *L, const ty_copybuf *b, size_t *pos, int n) {
  dec d = {.L = L, .p = b->p + *pos, .end = b->p + b->len};
  luaL_checkstack(L, n + 4, "too many values to copy");
  lua_newtable(L);
  d.refs = lua_gettop(L);
  for (int i = 0; i < n; i++)
    get_value(&d);
  lua_remove(L, d.refs);
  *pos = (size_t)(d.p - b->p);
  return n;
}
