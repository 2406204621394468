/* zlib.c: the tycho.zlib module: gzip, zlib and raw deflate over zlib,
 * one-shot (gzip, gunzip, deflate, inflate) and streaming (stream(kind)).
 *
 * Every zlib state lives in a userdata whose __gc (and __close) ends it, so
 * a Lua error raised while output is being gathered (out of memory in the
 * buffer) cannot leak zlib's allocations; the one-shot functions use the
 * same userdata and end it before they return.
 *
 * Misuse raises; corrupt or truncated input and an output above the
 * caller's max_size return nil, message, code with code Z_DATA_ERROR,
 * Z_BUF_ERROR (the input ended early) or Z_TOO_LARGE.
 */
#include <lauxlib.h>
#include <limits.h>
#include <string.h>
#include <zlib.h>

#define STREAM_MT "tycho.zlib.stream"
#define OUT_CHUNK 16384 /* output gathered per zlib call */

/* What a stream does; the inflating kinds come after K_RAW. */
enum { K_GZIP, K_DEFLATE, K_RAW, K_GUNZIP, K_INFLATE, K_INFLATE_RAW };

static const char *const kind_names[] = {
    "gzip", "deflate", "deflate-raw", "gunzip", "inflate", "inflate-raw", NULL};

typedef struct {
  z_stream z;
  int kind;
  int level;
  unsigned open : 1;    /* zlib state allocated: end it */
  unsigned started : 1; /* an inflater's state chosen from its input */
  unsigned ended : 1;   /* the compressed stream's end was seen */
  unsigned closed : 1;  /* finished or closed: no more input */
  size_t max;           /* output cap for inflaters, 0 none */
  size_t total;         /* output so far */
} zs;

static int inflating(const zs *s) { return s->kind > K_RAW; }

static void zs_end(zs *s) {
  if (s->open)
    inflating(s) ? inflateEnd(&s->z) : deflateEnd(&s->z);
  s->open = 0;
  s->closed = 1;
}

static int window_bits(int kind) {
  switch (kind) {
  case K_GZIP:
  case K_GUNZIP:
    return 15 + 16;
  case K_RAW:
  case K_INFLATE_RAW:
    return -15;
  default:
    return 15;
  }
}

/* Pushes a new stream userdata of kind (not started). [-0, +1, m] */
static zs *zs_push(lua_State *L, int kind, int level, size_t max) {
  zs *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->level = level;
  s->max = max;
  luaL_setmetatable(L, STREAM_MT);
  return s;
}

/* An inflater of kind "inflate" picks zlib or raw deflate from the first
 * byte: a zlib header's low nibble is 8 (deflate) and its window size at
 * most 7; raw deflate data rarely starts so (servers that send raw data
 * for Content-Encoding: deflate exist). */
static int looks_zlib(const unsigned char *p, size_t n) {
  if (n == 0)
    return 1;
  if ((p[0] & 0x0f) != 8 || (p[0] >> 4) > 7)
    return 0;
  return n < 2 || ((p[0] << 8) | p[1]) % 31 == 0;
}

/* Allocates the zlib state; raises only for out of memory. */
static void zs_start(lua_State *L, zs *s, const char *in, size_t n) {
  int rc, bits = window_bits(s->kind);
  if (s->kind == K_INFLATE && !looks_zlib((const unsigned char *)in, n))
    bits = -15;
  if (inflating(s))
    rc = inflateInit2(&s->z, bits);
  else
    rc = deflateInit2(&s->z, s->level, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK)
    luaL_error(L, "zlib: %s", rc == Z_MEM_ERROR ? "out of memory" : zError(rc));
  s->open = 1;
  s->started = 1;
}

/* Why a pump failed: a zlib code name and message. */
typedef struct {
  const char *code, *msg;
} zfail;

/* Deflates in[0..n) with flush, appending to b. */
static void pump_deflate(zs *s, const char *in, size_t n, int flush,
                         luaL_Buffer *b) {
  s->z.next_in = (Bytef *)in;
  s->z.avail_in = (uInt)n;
  do {
    char *out = luaL_prepbuffsize(b, OUT_CHUNK);
    s->z.next_out = (Bytef *)out;
    s->z.avail_out = OUT_CHUNK;
    deflate(&s->z, flush); /* cannot fail with a valid state and buffers */
    luaL_addsize(b, OUT_CHUNK - s->z.avail_out);
    s->total += OUT_CHUNK - s->z.avail_out;
  } while (s->z.avail_out == 0);
}

/* After a gzip member's end: another member may follow (gzip allows
 * several, back to back). Returns whether one does. */
static int next_member(zs *s) {
  if (s->kind != K_GUNZIP || s->z.avail_in == 0)
    return 0;
  if (s->z.next_in[0] != 0x1f)
    return 0;
  inflateReset(&s->z);
  s->ended = 0;
  return 1;
}

/* Inflates in[0..n), appending to b, until the input is used up and zlib
 * holds no more output. Returns 0, or 1 with *f set. */
static int pump_inflate(zs *s, const char *in, size_t n, luaL_Buffer *b,
                        zfail *f) {
  s->z.next_in = (Bytef *)in;
  s->z.avail_in = (uInt)n;
  for (;;) {
    if (s->ended && s->z.avail_in == 0)
      return 0;
    if (s->ended && !next_member(s)) {
      f->code = "Z_DATA_ERROR";
      f->msg = "data after the end of the compressed stream";
      return 1;
    }
    char *out = luaL_prepbuffsize(b, OUT_CHUNK);
    s->z.next_out = (Bytef *)out;
    s->z.avail_out = OUT_CHUNK;
    int rc = inflate(&s->z, Z_NO_FLUSH);
    size_t got = OUT_CHUNK - s->z.avail_out;
    luaL_addsize(b, got);
    s->total += got;
    if (s->max && s->total > s->max) {
      f->code = "Z_TOO_LARGE";
      f->msg = "decompressed data larger than max_size";
      return 1;
    }
    if (rc == Z_STREAM_END) {
      s->ended = 1;
    } else if (rc == Z_BUF_ERROR ||
               (rc == Z_OK && s->z.avail_in == 0 && s->z.avail_out > 0)) {
      return 0; /* all input taken and all output given: wants more */
    } else if (rc != Z_OK) {
      f->code = "Z_DATA_ERROR";
      f->msg = s->z.msg ? s->z.msg : "invalid compressed data";
      return 1;
    }
  }
}

/* Runs chunk (or the end, when finish) through s and pushes the output, or
 * nil, message, code. The stream ends after a failure or a finish.
 * [-0, +1|3, m] */
static int run(lua_State *L, zs *s, const char *in, size_t n, int finish,
               int sync) {
  luaL_argcheck(L, n <= UINT_MAX, 2, "chunk too large (over 4 GiB)");
  if (!s->started && n == 0 && !finish && s->kind == K_INFLATE) {
    lua_pushliteral(L, ""); /* zlib or raw is told by the first byte */
    return 1;
  }
  if (!s->started)
    zs_start(L, s, in, n);
  zfail f = {NULL, NULL};
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (!inflating(s)) {
    pump_deflate(s, in, n,
                 finish ? Z_FINISH
                 : sync ? Z_SYNC_FLUSH
                        : Z_NO_FLUSH,
                 &b);
  } else if (pump_inflate(s, in, n, &b, &f) == 0 && finish && !s->ended) {
    f.code = "Z_BUF_ERROR";
    f.msg = "compressed data ended early (truncated input)";
  }
  luaL_pushresult(&b);
  if (finish || f.code)
    zs_end(s);
  if (!f.code)
    return 1;
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", f.code, f.msg);
  lua_pushstring(L, f.code);
  return 3;
}

/* ---------------------------------------------------------------------- */
/* One-shot functions                                                     */

static int opt_level(lua_State *L, int idx) {
  lua_Integer level = luaL_optinteger(L, idx, Z_DEFAULT_COMPRESSION);
  luaL_argcheck(L, level >= -1 && level <= 9, idx, "level must be -1 to 9");
  return (int)level;
}

static size_t opt_max(lua_State *L, int idx) {
  lua_Integer max = luaL_optinteger(L, idx, 0);
  luaL_argcheck(L, max >= 0, idx, "max_size must not be negative");
  return (size_t)max;
}

/* Compresses or decompresses argument 1 whole with a stream of kind. */
static int one_shot(lua_State *L, int kind, int level, size_t max) {
  size_t n;
  const char *in = luaL_checklstring(L, 1, &n);
  zs *s = zs_push(L, kind, level, max);
  return run(L, s, in, n, 1, 0);
}

/* gzip(s [, level]) -> gzip data */
static int l_gzip(lua_State *L) {
  luaL_checkstring(L, 1);
  return one_shot(L, K_GZIP, opt_level(L, 2), 0);
}

/* gunzip(s [, max_size]) -> data | nil, message, code */
static int l_gunzip(lua_State *L) {
  luaL_checkstring(L, 1);
  return one_shot(L, K_GUNZIP, 0, opt_max(L, 2));
}

static const char *const formats[] = {"zlib", "raw", NULL};

/* deflate(s [, level [, "zlib"|"raw"]]) -> compressed data */
static int l_deflate(lua_State *L) {
  luaL_checkstring(L, 1);
  int level = opt_level(L, 2);
  int raw = luaL_checkoption(L, 3, "zlib", formats);
  return one_shot(L, raw ? K_RAW : K_DEFLATE, level, 0);
}

/* inflate(s [, max_size [, "zlib"|"raw"]]) -> data | nil, message, code */
static int l_inflate(lua_State *L) {
  luaL_checkstring(L, 1);
  size_t max = opt_max(L, 2);
  int raw = luaL_checkoption(L, 3, "zlib", formats);
  return one_shot(L, raw ? K_INFLATE_RAW : K_INFLATE, 0, max);
}

/* ---------------------------------------------------------------------- */
/* Streams                                                                */

/* Integer field k of the options table (argument 2) within lo..hi, or
 * def when absent; anything else raises naming argument 2 and k. */
static lua_Integer opt_field(lua_State *L, const char *k, lua_Integer def,
                             lua_Integer lo, lua_Integer hi, const char *why) {
  int isint;
  lua_getfield(L, 2, k);
  lua_Integer v = lua_tointegerx(L, -1, &isint);
  if (lua_isnil(L, -1))
    v = def, isint = 1;
  lua_pop(L, 1);
  if (!isint || v < lo || v > hi)
    luaL_argerror(L, 2, lua_pushfstring(L, "field '%s' %s", k, why));
  return v;
}

/* stream(kind [, opts]) -> stream. kind: gzip, gunzip, deflate, inflate,
 * deflate-raw, inflate-raw; opts.level (compressing), opts.max_size
 * (decompressing). */
static int l_stream(lua_State *L) {
  int kind = luaL_checkoption(L, 1, NULL, kind_names);
  int level = Z_DEFAULT_COMPRESSION;
  size_t max = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    level = (int)opt_field(L, "level", Z_DEFAULT_COMPRESSION, -1, 9,
                           "must be -1 to 9");
    max = (size_t)opt_field(L, "max_size", 0, 0, LUA_MAXINTEGER,
                            "must be a non-negative integer");
  }
  zs_push(L, kind, level, max);
  return 1;
}

static zs *check_open(lua_State *L) {
  zs *s = luaL_checkudata(L, 1, STREAM_MT);
  if (s->closed)
    luaL_error(L, "stream is finished");
  return s;
}

/* stream:update(chunk [, flush]) -> output | nil, message, code. flush
 * (compressing): end the output on a byte boundary now, so everything
 * given so far can be decompressed by the other side. */
static int zs_update(lua_State *L) {
  zs *s = check_open(L);
  size_t n;
  const char *in = luaL_checklstring(L, 2, &n);
  return run(L, s, in, n, 0, lua_toboolean(L, 3));
}

/* stream:finish([chunk]) -> the last output | nil, message, code. An
 * inflater whose input stopped before the compressed end fails. */
static int zs_finish(lua_State *L) {
  zs *s = check_open(L);
  size_t n = 0;
  const char *in = luaL_optlstring(L, 2, "", &n);
  return run(L, s, in, n, 1, 0);
}

/* stream:close(): frees the zlib state; idempotent (also __gc/__close). */
static int zs_close(lua_State *L) {
  zs_end(luaL_checkudata(L, 1, STREAM_MT));
  return 0;
}

static int zs_tostring(lua_State *L) {
  zs *s = luaL_checkudata(L, 1, STREAM_MT);
  lua_pushfstring(L, "zlib stream (%s%s)", kind_names[s->kind],
                  s->closed ? ", finished" : "");
  return 1;
}

int ty_zlib_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"update", zs_update},
                                     {"finish", zs_finish},
                                     {"close", zs_close},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", zs_close},
                                  {"__close", zs_close},
                                  {"__tostring", zs_tostring},
                                  {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"gzip", l_gzip},       {"gunzip", l_gunzip}, {"deflate", l_deflate},
      {"inflate", l_inflate}, {"stream", l_stream}, {NULL, NULL}};
  luaL_newmetatable(L, STREAM_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushstring(L, ZLIB_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
