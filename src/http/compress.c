/* compress.c: gzip for HTTP responses, opt-in per server
 * (tycho.http.serve{compression = true | {level=, min_length=, types=}})
 * or per response (res:compress(true|false)).
 *
 * message.c calls in at three points: a whole body (res:send, res:json, a
 * returned value) is compressed in one go before its head is written, so
 * Content-Length is the compressed length; a streamed body (res:write,
 * res:sse) gets a deflate state when its head is written and every write
 * goes out as one chunk ending in a sync flush, so the client can decode
 * everything sent so far (an SSE event is never held back); the end of the
 * stream writes the gzip trailer and frees the state. ty_req_free frees a
 * state left by a connection that went away mid-stream.
 *
 * Files sent with res:send_file are never compressed: the point of
 * sendfile is that the bytes never pass through us, and ranges and ETags
 * describe the file on disk.
 */
#define _GNU_SOURCE /* memmem, stpcpy */
#include "http/http.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

struct ty_gzip_conf {
  int level;
  size_t min_length;
  size_t ntypes;
  char types[]; /* ntypes NUL-terminated media types, back to back */
};

/* What compression = true means. */
/* Level 1 is nginx's default: on a 10 KB JSON answer it gives nearly all
 * of level 6's gain for about half the cpu (docs/performance.md). */
#define DEFAULT_LEVEL 1
#define DEFAULT_MIN_LENGTH 1024
#define STREAM_WBITS 14    /* streamed bodies: a 16 KB window ... */
#define STREAM_MEMLEVEL 7  /* ... about 130 KB of zlib state per stream */
#define SCRATCH_KEEP 65536 /* scratch buffers above this are let go */

static const char *const default_types[] = {"text/*",
                                            "application/json",
                                            "application/javascript",
                                            "application/xml",
                                            "application/xhtml+xml",
                                            "application/rss+xml",
                                            "application/atom+xml",
                                            "application/ld+json",
                                            "application/problem+json",
                                            "application/manifest+json",
                                            "application/wasm",
                                            "image/svg+xml",
                                            NULL};

/* Compressed output waits here until message.c copies it out. */
static ty_buf scratch;

/* ---------------------------------------------------------------------- */
/* Options                                                                */

static int opt_int(lua_State *L, int t, const char *k, int def, int lo,
                   int hi) {
  lua_getfield(L, t, k);
  int isnum;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  int absent = lua_isnil(L, -1);
  lua_pop(L, 1);
  if (absent)
    return def;
  if (!isnum || v < lo || v > hi)
    luaL_error(L,
               "bad option 'compression.%s' to 'serve' (integer %d-%d "
               "expected)",
               k, lo, hi);
  return (int)v;
}

/* Checks compression.types (a list of strings) and returns the bytes its
 * copy needs; 0 for the default list. The list stays pushed (nil when
 * absent) for copy_types: reading the field again could run an __index
 * that answers with another list. [-0, +1, v] */
static size_t types_size(lua_State *L, int t, size_t *ntypes) {
  if (lua_getfield(L, t, "types") == LUA_TNIL) {
    *ntypes = 0;
    return 0;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "bad option 'compression.types' to 'serve' (list of "
                  "media types expected)");
  size_t size = 0, n = (size_t)lua_rawlen(L, -1);
  for (size_t i = 1; i <= n; i++) {
    size_t len;
    lua_rawgeti(L, -1, (lua_Integer)i);
    int is_str = lua_type(L, -1) == LUA_TSTRING; /* before a conversion */
    const char *s = lua_tolstring(L, -1, &len);
    if (!is_str || len == 0 || strlen(s) != len)
      luaL_error(L,
                 "bad option 'compression.types' to 'serve' (entry %d "
                 "is not a media type string)",
                 (int)i);
    size += len + 1;
    lua_pop(L, 1);
  }
  *ntypes = n;
  return size;
}

/* Copies the types list checked by types_size (at index list), or the
 * default one, into g->types. Raw reads only: nothing runs in between. */
static void copy_types(lua_State *L, int list, ty_gzip_conf *g) {
  char *o = g->types;
  if (g->ntypes == 0) {
    for (const char *const *d = default_types; *d; d++, g->ntypes++)
      o = stpcpy(o, *d) + 1;
    return;
  }
  for (size_t i = 1; i <= g->ntypes; i++) {
    lua_rawgeti(L, list, (lua_Integer)i);
    o = stpcpy(o, lua_tostring(L, -1)) + 1;
    lua_pop(L, 1);
  }
}

ty_gzip_conf *ty_gzip_conf_read(lua_State *L, int opts) {
  int level = DEFAULT_LEVEL, min = DEFAULT_MIN_LENGTH, list = 0;
  size_t ntypes = 0, size = 0;
  int type = lua_getfield(L, opts, "compression");
  if (type == LUA_TNIL || (type == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
    lua_pop(L, 1);
    return NULL;
  }
  if (type == LUA_TTABLE) {
    int t = lua_gettop(L);
    level = opt_int(L, t, "level", level, 1, 9);
    min = opt_int(L, t, "min_length", min, 0, INT_MAX);
    size = types_size(L, t, &ntypes);
    list = lua_gettop(L);
  } else if (type != LUA_TBOOLEAN) {
    luaL_error(L,
               "bad option 'compression' to 'serve' (boolean or table "
               "expected, got %s)",
               luaL_typename(L, -1));
  }
  if (ntypes == 0)
    for (const char *const *d = default_types; *d; d++)
      size += strlen(*d) + 1;
  ty_gzip_conf *g = malloc(sizeof *g + size);
  if (!g)
    luaL_error(L, "out of memory");
  g->level = level;
  g->min_length = (size_t)min;
  g->ntypes = ntypes;
  copy_types(L, list, g); /* no Lua error past the malloc: checked above */
  lua_pop(L, list ? 2 : 1);
  return g;
}

void ty_gzip_conf_free(ty_gzip_conf *g) { free(g); }

/* ---------------------------------------------------------------------- */
/* Whether to compress                                                    */

/* The value of response header name[0..n) set by the handler, or NULL. */
static const char *res_header(ty_req *r, const char *name, size_t n,
                              size_t *vlen) {
  ty_buf *h = &r->rhead;
  size_t i = 0;
  while (i < h->len) {
    const char *eol = memchr(h->p + i, '\r', h->len - i);
    size_t end = eol ? (size_t)(eol - h->p) : h->len;
    if (end - i > n + 1 && h->p[i + n] == ':' &&
        strncasecmp(h->p + i, name, n) == 0) {
      *vlen = end - i - n - 2; /* after ": " */
      return h->p + i + n + 2;
    }
    i = end + 2;
  }
  return NULL;
}

/* Whether the media type (up to ";", any case) is in the server's list:
 * an entry ending in a slash and a star takes every subtype. */
static int type_listed(const ty_gzip_conf *g, const char *v, size_t n) {
  size_t len = 0;
  while (len < n && v[len] != ';' && v[len] != ' ')
    len++;
  const char *t = g ? g->types : NULL;
  for (size_t i = 0; g && i < g->ntypes; i++, t += strlen(t) + 1) {
    size_t tl = strlen(t);
    if (tl >= 2 && t[tl - 1] == '*' && t[tl - 2] == '/') {
      if (len >= tl - 1 && strncasecmp(v, t, tl - 1) == 0)
        return 1;
    } else if (tl == len && strncasecmp(v, t, len) == 0) {
      return 1;
    }
  }
  return 0;
}

/* The q-value of one Accept-Encoding element's parameters s[0..n):
 * whether it is above zero ("q=0", "q=0.0", "q=0.000" refuse). */
static int q_positive(const char *s, size_t n) {
  for (size_t i = 0; i + 1 < n; i++) {
    if ((s[i] != 'q' && s[i] != 'Q') || s[i + 1] != '=')
      continue;
    for (size_t k = i + 2; k < n && s[k] != ';' && s[k] != ' '; k++)
      if (s[k] != '0' && s[k] != '.')
        return 1;
    return 0;
  }
  return 1; /* no q: 1 */
}

/* Scans one Accept-Encoding value: sets *gzip (-1 unlisted, 0 refused,
 * 1 accepted) and *star likewise for "*". */
static void scan_accept(const char *v, size_t n, int *gzip, int *star) {
  size_t i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    size_t start = i;
    while (i < n && v[i] != ',')
      i++;
    size_t len = 0;
    while (start + len < i && v[start + len] != ';' && v[start + len] != ' ')
      len++;
    int ok = q_positive(v + start + len, i - start - len);
    const char *name = v + start;
    if ((len == 4 && strncasecmp(name, "gzip", 4) == 0) ||
        (len == 6 && strncasecmp(name, "x-gzip", 6) == 0))
      *gzip = ok;
    else if (len == 1 && name[0] == '*')
      *star = ok;
  }
}

/* Whether the request's Accept-Encoding lets us send gzip. */
static int client_accepts(ty_req *r) {
  int gzip = -1, star = -1;
  for (size_t i = 0; i < r->nhdrs; i++) {
    ty_span *s = &r->hdrs[i];
    if (s->name_len == 15 &&
        strncasecmp(r->head.p + s->name, "accept-encoding", 15) == 0)
      scan_accept(r->head.p + s->value, s->value_len, &gzip, &star);
  }
  return gzip == 1 || (gzip == -1 && star == 1);
}

/* Whether this response may be sent gzipped to a client that accepts it:
 * len is the body's length, or SIZE_MAX for a streamed one. */
static int compressible(ty_req *r, size_t len) {
  const ty_gzip_conf *g = r->conn->srv->gzip;
  size_t vlen;
  if (r->gz_mode == TY_GZ_OFF || (!g && r->gz_mode != TY_GZ_ON))
    return 0;
  if (r->status < 200 || r->status == 204 || r->status == 206 ||
      r->status == 304 || r->method == HTTP_HEAD)
    return 0;
  if (res_header(r, "Content-Encoding", 16, &vlen))
    return 0;
  if (r->gz_mode == TY_GZ_ON)
    return 1;
  if (len != SIZE_MAX && len < g->min_length)
    return 0;
  const char *ct = res_header(r, "Content-Type", 12, &vlen);
  if (!ct) /* message.c's default */
    ct = "text/plain", vlen = 10;
  return type_listed(g, ct, vlen);
}

/* Whether v[0..n) holds word, in any case. */
static int has_word(const char *v, size_t n, const char *word) {
  size_t wl = strlen(word);
  for (size_t i = 0; i + wl <= n; i++)
    if (strncasecmp(v + i, word, wl) == 0)
      return 1;
  return 0;
}

/* The headers of a compressible response: Vary (a cache must not give the
 * gzipped answer to a client that did not ask for it) and, when gzipped,
 * Content-Encoding, and a strong ETag made weak (the bytes differ from the
 * identity representation's). Returns -1 when out of memory. */
static int add_headers(ty_req *r, int gzipped) {
  static const char vary[] = "Vary: Accept-Encoding\r\n";
  static const char enc[] = "Content-Encoding: gzip\r\n";
  size_t vlen;
  const char *v = res_header(r, "Vary", 4, &vlen);
  if (!v || !has_word(v, vlen, "accept-encoding"))
    if (ty_buf_add(&r->rhead, vary, sizeof vary - 1) != 0)
      return -1;
  if (!gzipped)
    return 0;
  if (ty_buf_add(&r->rhead, enc, sizeof enc - 1) != 0)
    return -1;
  const char *etag = res_header(r, "ETag", 4, &vlen);
  if (etag && vlen && etag[0] == '"') {
    size_t at = (size_t)(etag - r->rhead.p);
    if (ty_buf_reserve(&r->rhead, 2) != 0)
      return -1;
    memmove(r->rhead.p + at + 2, r->rhead.p + at, r->rhead.len - at);
    memcpy(r->rhead.p + at, "W/", 2);
    r->rhead.len += 2;
  }
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Deflating                                                              */

/* Runs p[0..n) through z with flush, appending to out. */
static int pump(z_stream *z, const char *p, size_t n, int flush, ty_buf *out) {
  z->next_in = (Bytef *)p;
  z->avail_in = (uInt)n;
  do {
    if (ty_buf_reserve(out, n / 2 + 16384) != 0)
      return -1;
    size_t room = out->cap - out->len;
    z->next_out = (Bytef *)(out->p + out->len);
    z->avail_out = room > UINT_MAX ? UINT_MAX : (uInt)room;
    deflate(z, flush);
    out->len = (size_t)((char *)z->next_out - out->p);
  } while (z->avail_out == 0 || z->avail_in > 0);
  return 0;
}

static void scratch_reset(void) {
  if (scratch.cap > SCRATCH_KEEP)
    ty_buf_free(&scratch);
  scratch.len = 0;
}

/* The window for a body of len bytes: no bigger than the body (nginx does
 * the same), which saves most of zlib's set-up cost on small answers. */
static void small_window(size_t len, int *wbits, int *memlevel) {
  *wbits = 15, *memlevel = 8;
  while (*wbits > 9 && len < ((size_t)1 << (*wbits - 1))) {
    (*wbits)--;
    if (*memlevel > 1)
      (*memlevel)--;
  }
}

static int level_of(ty_req *r) {
  const ty_gzip_conf *g = r->conn->srv->gzip;
  return g ? g->level : DEFAULT_LEVEL;
}

const char *ty_gzip_whole(ty_req *r, const char *body, size_t *len) {
  if (!compressible(r, *len) || *len > UINT_MAX)
    return body;
  if (r->head_only || !client_accepts(r)) {
    add_headers(r, 0);
    return body;
  }
  z_stream z;
  memset(&z, 0, sizeof z);
  int wbits, memlevel;
  small_window(*len, &wbits, &memlevel);
  if (deflateInit2(&z, level_of(r), Z_DEFLATED, wbits + 16, memlevel,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return body; /* out of memory: identity is still an answer */
  scratch_reset();
  int err = ty_buf_reserve(&scratch, deflateBound(&z, (uLong)*len)) != 0 ||
            pump(&z, body, *len, Z_FINISH, &scratch) != 0;
  deflateEnd(&z);
  if (err || add_headers(r, 1) != 0)
    return body;
  *len = scratch.len;
  return scratch.p;
}

void ty_gzip_stream_start(ty_req *r) {
  if (r->has_clen || !compressible(r, SIZE_MAX))
    return;
  if (r->head_only || !client_accepts(r)) {
    add_headers(r, 0);
    return;
  }
  z_stream *z = calloc(1, sizeof *z);
  if (!z)
    return;
  if (deflateInit2(z, level_of(r), Z_DEFLATED, STREAM_WBITS + 16,
                   STREAM_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
    free(z);
    return;
  }
  r->gz = z;
  if (add_headers(r, 1) != 0)
    ty_gzip_end(r);
}

/* Compresses one write (flush: Z_SYNC_FLUSH) or the end (Z_FINISH, and the
 * state is freed). A failure (out of memory) ends the connection after
 * what was sent: the gzip stream cannot be completed. */
static const char *stream_step(ty_req *r, const char *p, size_t *len,
                               int flush) {
  scratch_reset();
  int err = *len > UINT_MAX || pump(r->gz, p, *len, flush, &scratch) != 0;
  if (err) {
    r->res_close = 1;
    scratch.len = 0;
  }
  *len = scratch.len;
  return scratch.p;
}

const char *ty_gzip_chunk(ty_req *r, const char *p, size_t *len) {
  return stream_step(r, p, len, Z_SYNC_FLUSH);
}

const char *ty_gzip_finish(ty_req *r, size_t *len) {
  *len = 0;
  const char *out = stream_step(r, "", len, Z_FINISH);
  ty_gzip_end(r);
  return out;
}

void ty_gzip_end(ty_req *r) {
  if (!r->gz)
    return;
  deflateEnd(r->gz);
  free(r->gz);
  r->gz = NULL;
}
