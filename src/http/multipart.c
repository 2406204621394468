/* multipart.c: an incremental multipart/form-data parser (RFC 7578 over
 * RFC 2046), the `tycho.http.multipart` module that req:parts() and
 * req:form() (lua/tycho/http/form.lua) drive.
 *
 * The parser is pull-based, which is what gives streaming its
 * back-pressure: the Lua side asks for the next event and feeds more of
 * the body only when the parser answers "more". Events:
 *   "part", info   a part's headers are in: info = {name, filename,
 *                  content_type, headers}
 *   "data", bytes  some of the current part's content
 *   "end"          the current part ended (its delimiter was seen)
 *   "done"         the close delimiter was seen; the epilogue is ignored
 *   "more"         feed more bytes, or call finish() at the end of input
 *   nil, message   the body is malformed; the parser stays failed
 * The parser keeps only bytes it has not handed out: when no delimiter is
 * in sight it returns all content except the last delimiter-length bytes,
 * which might be the start of one split across reads.
 *
 * The body is parsed as if it started with CRLF, so the first delimiter
 * ("--boundary" at the very start, or after a preamble) is found by the
 * same search as every later one ("\r\n--boundary"). After a delimiter
 * come "--" (the close delimiter), or transport padding (blanks) and CRLF.
 * Anything else is an error: RFC 2046 forbids the delimiter inside
 * content, so a near miss means a broken body, not data. Part headers are
 * bounded in count and bytes; a header line with a bare CR or LF, an
 * obsolete folded line, a name that is not a token or a repeated header is
 * refused, so a part cannot smuggle a second Content-Disposition.
 */
#define _GNU_SOURCE /* memmem */
#include "http/http.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MP_MT "tycho.http.multipart.parser"
#define MP_MAX_BOUNDARY 70       /* RFC 2046 section 5.1.1 */
#define MP_MAX_HEADERS 16        /* header lines in one part */
#define MP_MAX_HEADER_BYTES 8192 /* one part's header block */
#define MP_MAX_PARTS 1000        /* parts in one body */

/* Parser states. */
enum { S_PREAMBLE, S_AFTER_DELIM, S_HEADERS, S_BODY, S_DONE, S_FAILED };

typedef struct {
  char delim[MP_MAX_BOUNDARY + 4]; /* "\r\n--" boundary */
  size_t dlen;
  char *buf; /* unconsumed input is buf[start..len) */
  size_t start, len, cap;
  int state;
  int eof; /* finish() was called: no more input */
  size_t parts, max_parts, max_headers, max_header_bytes;
  const char *error; /* static message when state is S_FAILED */
} mp_parser;

/* ---------------------------------------------------------------------- */
/* Character classes                                                      */

static int is_blank(int ch) { return ch == ' ' || ch == '\t'; }

/* RFC 9110 tchar */
static int is_tchar(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
      (ch >= '0' && ch <= '9'))
    return 1;
  return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* RFC 2046 bchars (a space may not end a boundary: is_boundary checks). */
static int is_bchar(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
      (ch >= '0' && ch <= '9'))
    return 1;
  return ch && strchr("'()+_,-./:=? ", ch) != NULL;
}

/* ---------------------------------------------------------------------- */
/* Header parameters: `type; key=value; key="quoted \" value"`            */

typedef struct {
  const char *s;
  size_t n, i;
} cursor;

static void skip_ows(cursor *c) {
  while (c->i < c->n && is_blank(c->s[c->i]))
    c->i++;
}

/* Reads a token at the cursor; returns its length (0: none). */
static size_t read_token(cursor *c, const char **tok) {
  *tok = c->s + c->i;
  size_t from = c->i;
  while (c->i < c->n && is_tchar((unsigned char)c->s[c->i]))
    c->i++;
  return c->i - from;
}

/* Pushes a parameter value (token or quoted-string, quoted-pairs undone).
 * Returns 0 when it is malformed (nothing pushed). [-0, +(0|1), m] */
static int push_value(lua_State *L, cursor *c) {
  if (c->i < c->n && c->s[c->i] == '"') {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (c->i++; c->i < c->n; c->i++) {
      char ch = c->s[c->i];
      if (ch == '"') {
        c->i++;
        luaL_pushresult(&b);
        return 1;
      }
      if (ch == '\\' && c->i + 1 < c->n)
        ch = c->s[++c->i];
      luaL_addchar(&b, ch);
    }
    luaL_pushresult(&b);
    lua_pop(L, 1);
    return 0; /* no closing quote */
  }
  const char *tok;
  size_t n = read_token(c, &tok);
  if (n == 0)
    return 0;
  lua_pushlstring(L, tok, n);
  return 1;
}

/* Parses `; key=value` pairs from the cursor into table t, keys lowered.
 * A repeated key makes the header malformed. Returns 0 on malformed
 * input. [-0, +0, m] */
static int parse_params(lua_State *L, cursor *c, int t) {
  for (;;) {
    skip_ows(c);
    if (c->i == c->n)
      return 1;
    if (c->s[c->i] != ';')
      return 0;
    c->i++;
    skip_ows(c);
    if (c->i == c->n)
      return 1; /* a trailing ';' */
    const char *key;
    size_t klen = read_token(c, &key);
    char lower[64];
    if (klen == 0 || klen >= sizeof lower)
      return 0;
    for (size_t k = 0; k < klen; k++)
      lower[k] =
          (char)((key[k] >= 'A' && key[k] <= 'Z') ? key[k] + 32 : key[k]);
    skip_ows(c);
    if (c->i == c->n || c->s[c->i] != '=')
      return 0;
    c->i++;
    skip_ows(c);
    lua_pushlstring(L, lower, klen);
    if (lua_rawget(L, t) != LUA_TNIL) {
      lua_pop(L, 1);
      return 0;
    }
    lua_pop(L, 1);
    lua_pushlstring(L, lower, klen);
    if (!push_value(L, c)) {
      lua_pop(L, 1);
      return 0;
    }
    lua_rawset(L, t);
  }
}

/* Pushes a table of the parameters of header value s and returns the
 * media or disposition type's length at s (0 when malformed: then nothing
 * is pushed). [-0, +(0|1), m] */
static size_t push_params(lua_State *L, const char *s, size_t n) {
  cursor c = {s, n, 0};
  skip_ows(&c);
  size_t from = c.i;
  while (c.i < n && (is_tchar((unsigned char)s[c.i]) || s[c.i] == '/'))
    c.i++;
  size_t tlen = c.i - from;
  lua_newtable(L);
  if (tlen == 0 || !parse_params(L, &c, lua_gettop(L))) {
    lua_pop(L, 1);
    return 0;
  }
  return tlen;
}

/* ---------------------------------------------------------------------- */
/* RFC 5987 ext-value: charset'language'percent-encoded                   */

/* Pushes the ISO-8859-1 bytes s[0..n) as UTF-8. [-0, +1, m] */
static void push_latin1(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x80) {
      luaL_addchar(&b, (char)ch);
    } else {
      luaL_addchar(&b, (char)(0xC0 | (ch >> 6)));
      luaL_addchar(&b, (char)(0x80 | (ch & 0x3F)));
    }
  }
  luaL_pushresult(&b);
}

/* RFC 5987 attr-char: what may stand unescaped in an ext-value. */
static int is_attr_char(unsigned char ch) {
  return is_tchar(ch) && ch != '*' && ch != '\'' && ch != '%';
}

/* Checks the percent-encoded value-chars s[0..n) of an ext-value. */
static int valid_value_chars(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '%') {
      if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
          !isxdigit((unsigned char)s[i + 2]))
        return 0;
      i += 2;
    } else if (!is_attr_char(ch)) {
      return 0;
    }
  }
  return 1;
}

/* Decodes the ext-value on top of the stack in place; returns 0 (and pops
 * it) when it is malformed or its charset is neither UTF-8 nor
 * ISO-8859-1. [-1, +(0|1), m] */
static int decode_ext_value(lua_State *L) {
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  const char *q1 = memchr(s, '\'', n);
  const char *q2 = q1 ? memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - s)) : NULL;
  size_t cs = q1 ? (size_t)(q1 - s) : 0;
  int utf8 = cs == 5 && strncasecmp(s, "utf-8", 5) == 0;
  int latin1 = cs == 10 && strncasecmp(s, "iso-8859-1", 10) == 0;
  const char *v = q2 ? q2 + 1 : NULL;
  size_t vn = v ? n - (size_t)(v - s) : 0;
  if (!v || !(utf8 || latin1) || !valid_value_chars(v, vn)) {
    lua_pop(L, 1);
    return 0;
  }
  ty_url_decode(L, v, vn, 0); /* message.c, as for req.query */
  if (latin1) {
    size_t dn;
    const char *d = lua_tolstring(L, -1, &dn);
    push_latin1(L, d, dn);
    lua_replace(L, -2);
  }
  lua_replace(L, -2);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Part headers                                                           */

static int fail(mp_parser *p, const char *msg) {
  p->state = S_FAILED;
  p->error = msg;
  return 0;
}

/* Parses one "Name: value" line into headers table t (name lowered).
 * Returns 0 with p failed when the line is malformed. [-0, +0, m] */
static int header_line(lua_State *L, mp_parser *p, const char *s, size_t n,
                       int t) {
  if (n > 0 && is_blank(s[0]))
    return fail(p, "folded part header line");
  const char *colon = memchr(s, ':', n);
  size_t nlen = colon ? (size_t)(colon - s) : 0;
  if (nlen == 0 || nlen > 64)
    return fail(p, "malformed part header line");
  char name[64];
  for (size_t i = 0; i < nlen; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (!is_tchar(ch))
      return fail(p, "malformed part header name");
    name[i] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
  }
  size_t v = nlen + 1, e = n;
  while (v < e && is_blank(s[v]))
    v++;
  while (e > v && is_blank(s[e - 1]))
    e--;
  for (size_t i = v; i < e; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
      return fail(p, "control character in a part header");
  lua_pushlstring(L, name, nlen);
  if (lua_rawget(L, t) != LUA_TNIL) {
    lua_pop(L, 1);
    return fail(p, "repeated part header");
  }
  lua_pop(L, 1);
  lua_pushlstring(L, name, nlen);
  lua_pushlstring(L, s + v, e - v);
  lua_rawset(L, t);
  return 1;
}

/* From the headers table at t, fills info table at info with name,
 * filename and content_type. Returns 0 with p failed when the
 * Content-Disposition is missing or malformed. [-0, +0, m] */
static int disposition(lua_State *L, mp_parser *p, int t, int info) {
  if (lua_getfield(L, t, "content-disposition") != LUA_TSTRING) {
    lua_pop(L, 1);
    return fail(p, "part without a Content-Disposition header");
  }
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  size_t tlen = push_params(L, s, n);
  if (tlen == 0) {
    lua_pop(L, 1);
    return fail(p, "malformed Content-Disposition header");
  }
  int params = lua_gettop(L);
  const char *type = s;
  while (is_blank(*type))
    type++;
  if (tlen != 9 || strncasecmp(type, "form-data", 9) != 0) {
    lua_pop(L, 2);
    return fail(p, "part is not form-data");
  }
  if (lua_getfield(L, params, "name") != LUA_TSTRING) {
    lua_pop(L, 3);
    return fail(p, "part without a name");
  }
  lua_setfield(L, info, "name");
  int have_ext = 0;
  if (lua_getfield(L, params, "filename*") == LUA_TSTRING)
    have_ext = decode_ext_value(L); /* pops a bad one */
  else
    lua_pop(L, 1);
  if (have_ext || lua_getfield(L, params, "filename") == LUA_TSTRING)
    lua_setfield(L, info, "filename");
  else
    lua_pop(L, 1);
  lua_pop(L, 2);
  if (lua_getfield(L, t, "content-type") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "text/plain"); /* RFC 7578 section 4.4 */
  }
  lua_setfield(L, info, "content_type");
  return 1;
}

/* The header block s[0..n) (lines without the blank line) is complete:
 * pushes the part's info table. Returns 0 with p failed on malformed
 * headers (nothing pushed). [-0, +(0|1), m] */
static int push_part(lua_State *L, mp_parser *p, const char *s, size_t n) {
  lua_createtable(L, 0, 4);
  int info = lua_gettop(L);
  lua_createtable(L, 0, 2);
  int t = lua_gettop(L);
  size_t count = 0, i = 0;
  while (i < n) {
    const char *eol = memchr(s + i, '\n', n - i);
    size_t end = eol ? (size_t)(eol - s) : n;
    if (end == i || s[end - 1] != '\r') {
      lua_pop(L, 2);
      return fail(p, "bare LF in part headers");
    }
    if (++count > p->max_headers) {
      lua_pop(L, 2);
      return fail(p, "too many part headers");
    }
    if (!header_line(L, p, s + i, end - 1 - i, t)) {
      lua_pop(L, 2);
      return 0;
    }
    i = end + 1;
  }
  if (!disposition(L, p, t, info)) {
    lua_pop(L, 2);
    return 0;
  }
  lua_setfield(L, info, "headers");
  return 1;
}

/* ---------------------------------------------------------------------- */
/* The state machine                                                      */

static size_t avail(mp_parser *p) { return p->len - p->start; }
static const char *at(mp_parser *p) { return p->buf + p->start; }

/* Finds the delimiter in the unconsumed input: its offset from start, or
 * how many leading bytes are surely content (*safe) when it is absent. */
static int find_delim(mp_parser *p, size_t *off, size_t *safe) {
  const char *hit = memmem(at(p), avail(p), p->delim, p->dlen);
  if (hit) {
    *off = (size_t)(hit - at(p));
    return 1;
  }
  /* Keep the tail that could begin a delimiter: from its last CR. */
  size_t n = avail(p), keep = p->dlen - 1 < n ? p->dlen - 1 : n;
  const char *cr = NULL;
  for (size_t k = n - keep; k < n; k++)
    if (at(p)[k] == '\r' && memcmp(at(p) + k, p->delim, n - k) == 0) {
      cr = at(p) + k;
      break;
    }
  *safe = cr ? (size_t)(cr - at(p)) : n;
  return 0;
}

/* The body or preamble: pushes "data", bytes (body only) or moves on.
 * Returns the number of values pushed, or -1 to run the machine again. */
static int step_content(lua_State *L, mp_parser *p) {
  size_t off = 0, safe = 0;
  int found = find_delim(p, &off, &safe);
  size_t take = found ? off : safe;
  if (take > 0) {
    int emit = p->state == S_BODY;
    if (emit) {
      lua_pushliteral(L, "data");
      lua_pushlstring(L, at(p), take);
    }
    p->start += take;
    return emit ? 2 : -1;
  }
  if (!found)
    return 0; /* more */
  p->start += p->dlen;
  int was_body = p->state == S_BODY;
  p->state = S_AFTER_DELIM;
  if (!was_body)
    return -1;
  lua_pushliteral(L, "end");
  return 1;
}

/* After a delimiter: "--", or blanks then CRLF. */
static int step_after_delim(lua_State *L, mp_parser *p) {
  while (avail(p) > 0 && is_blank(at(p)[0]))
    p->start++; /* transport padding */
  if (avail(p) < 2)
    return 0;
  if (at(p)[0] == '-' && at(p)[1] == '-') {
    p->state = S_DONE;
    p->start = p->len; /* the epilogue is ignored */
    lua_pushliteral(L, "done");
    return 1;
  }
  if (at(p)[0] != '\r' || at(p)[1] != '\n') {
    fail(p, "malformed multipart boundary line");
    return 0;
  }
  p->start += 2;
  p->state = S_HEADERS;
  return -1;
}

/* A part's header block, when all of it is in. */
static int step_headers(lua_State *L, mp_parser *p) {
  size_t n = avail(p), end, skip;
  if (n >= 2 && at(p)[0] == '\r' && at(p)[1] == '\n') {
    end = 0, skip = 2; /* no headers at all */
  } else {
    const char *hit = memmem(at(p), n, "\r\n\r\n", 4);
    if (!hit) {
      /* The block would end (with its last CRLF) past the limit. */
      if (n > p->max_header_bytes + 1)
        fail(p, "part headers too large");
      return 0;
    }
    end = (size_t)(hit - at(p)) + 2, skip = 2;
  }
  if (end > p->max_header_bytes) {
    fail(p, "part headers too large");
    return 0;
  }
  if (++p->parts > p->max_parts) {
    fail(p, "too many parts");
    return 0;
  }
  lua_pushliteral(L, "part");
  if (!push_part(L, p, at(p), end)) {
    lua_pop(L, 1);
    return 0;
  }
  p->start += end + skip;
  p->state = S_BODY;
  return 2;
}

/* Runs the machine until it has an event. [-0, +(0|1|2), m] */
static int next_event(lua_State *L, mp_parser *p) {
  for (;;) {
    int n = 0;
    switch (p->state) {
    case S_PREAMBLE:
    case S_BODY:
      n = step_content(L, p);
      break;
    case S_AFTER_DELIM:
      n = step_after_delim(L, p);
      break;
    case S_HEADERS:
      n = step_headers(L, p);
      break;
    case S_DONE:
      lua_pushliteral(L, "done");
      return 1;
    default:
      return 0;
    }
    if (n >= 0)
      return n;
  }
}

/* ---------------------------------------------------------------------- */
/* Lua API                                                                */

static mp_parser *check_parser(lua_State *L) {
  return luaL_checkudata(L, 1, MP_MT);
}

static size_t opt_limit(lua_State *L, int opts, const char *key, size_t def) {
  if (lua_isnoneornil(L, opts))
    return def;
  lua_getfield(L, opts, key);
  lua_Integer v = def;
  if (!lua_isnil(L, -1)) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 1)
      luaL_error(L,
                 "bad argument #2 to 'parser' (field '%s' must be a "
                 "positive integer)",
                 key);
  }
  lua_pop(L, 1);
  return (size_t)v;
}

static int is_boundary(const char *b, size_t n) {
  if (n == 0 || n > MP_MAX_BOUNDARY || b[n - 1] == ' ')
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!is_bchar((unsigned char)b[i]))
      return 0;
  return 1;
}

/* multipart.parser(boundary[, limits]) -> parser. limits: max_headers,
 * max_header_bytes, max_parts. */
static int l_parser(lua_State *L) {
  size_t n;
  const char *b = luaL_checklstring(L, 1, &n);
  luaL_argcheck(L, is_boundary(b, n), 1, "invalid multipart boundary");
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  size_t mh = opt_limit(L, 2, "max_headers", MP_MAX_HEADERS);
  size_t mb = opt_limit(L, 2, "max_header_bytes", MP_MAX_HEADER_BYTES);
  size_t mp = opt_limit(L, 2, "max_parts", MP_MAX_PARTS);
  mp_parser *p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  luaL_setmetatable(L, MP_MT);
  memcpy(p->delim, "\r\n--", 4);
  memcpy(p->delim + 4, b, n);
  p->dlen = n + 4;
  p->max_headers = mh, p->max_header_bytes = mb, p->max_parts = mp;
  p->state = S_PREAMBLE;
  /* The body is read as if it began with CRLF (see the file's header). */
  p->buf = malloc(64);
  if (!p->buf)
    return luaL_error(L, "not enough memory");
  p->cap = 64;
  memcpy(p->buf, "\r\n", 2);
  p->len = 2;
  return 1;
}

/* parser:feed(bytes): appends input (ignored once done or failed). */
static int l_feed(lua_State *L) {
  mp_parser *p = check_parser(L);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  if (p->eof)
    return luaL_error(L, "parser:feed() after parser:finish()");
  if (p->state == S_DONE || p->state == S_FAILED || n == 0)
    return 0;
  if (p->start > 0) { /* drop what was handed out */
    memmove(p->buf, p->buf + p->start, p->len - p->start);
    p->len -= p->start;
    p->start = 0;
  }
  if (p->len + n > p->cap) {
    size_t cap = p->cap;
    while (cap < p->len + n)
      cap *= 2;
    char *nb = realloc(p->buf, cap);
    if (!nb)
      return luaL_error(L, "not enough memory");
    p->buf = nb, p->cap = cap;
  }
  memcpy(p->buf + p->len, s, n);
  p->len += n;
  return 0;
}

/* parser:finish(): the input ended. */
static int l_finish(lua_State *L) {
  check_parser(L)->eof = 1;
  return 0;
}

/* parser:next() -> event[, value], or nil, message (see the header). */
static int l_next(lua_State *L) {
  mp_parser *p = check_parser(L);
  lua_settop(L, 1);
  int n = next_event(L, p);
  if (n > 0)
    return n;
  if (p->state != S_FAILED) {
    if (!p->eof) {
      lua_pushliteral(L, "more");
      return 1;
    }
    fail(p, p->parts > 0 || p->state != S_PREAMBLE
                ? "multipart body ends before its final boundary"
                : "no multipart boundary in the body");
  }
  luaL_pushfail(L);
  lua_pushstring(L, p->error);
  return 2;
}

/* multipart.boundary(content_type) -> boundary, or nil, message when the
 * header is not multipart/form-data with a valid boundary parameter. */
static int l_boundary(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  size_t tlen = push_params(L, s, n);
  const char *type = s;
  while (is_blank(*type))
    type++;
  if (tlen != 19 || strncasecmp(type, "multipart/form-data", 19) != 0) {
    luaL_pushfail(L);
    lua_pushliteral(L, "content type is not multipart/form-data");
    return 2;
  }
  size_t bn = 0;
  const char *b = NULL;
  if (lua_getfield(L, -1, "boundary") == LUA_TSTRING)
    b = lua_tolstring(L, -1, &bn);
  if (!b || !is_boundary(b, bn)) {
    luaL_pushfail(L);
    lua_pushliteral(L, "multipart/form-data without a valid boundary");
    return 2;
  }
  return 1;
}

static int l_gc(lua_State *L) {
  mp_parser *p = check_parser(L);
  free(p->buf);
  p->buf = NULL;
  p->len = p->start = p->cap = 0;
  p->state = S_FAILED;
  p->error = "parser is closed";
  return 0;
}

int ty_multipart_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"feed", l_feed}, {"finish", l_finish}, {"next", l_next}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"parser", l_parser}, {"boundary", l_boundary}, {NULL, NULL}};
  luaL_newmetatable(L, MP_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
