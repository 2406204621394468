/* ws_deflate.c: permessage-deflate (RFC 7692) compression for one
 * WebSocket connection. Owns the connection's zlib streams (raw deflate,
 * created on first use, so a connection that negotiated the extension but
 * sends only small messages allocates no compressor), the 00 00 ff ff tail
 * every message loses on the wire, context takeover (a stream carries its
 * window from message to message unless the handshake said otherwise), and
 * the bounded inflate that stops a zip bomb at the message size limit.
 *
 * Window bits: zlib cannot make raw deflate with an 8-bit window (it
 * refuses -8), so when our compressor must stay within 256 bytes we run it
 * with 9 bits and the Z_RLE strategy, whose matches all have distance 1:
 * valid for any window. The decompressor accepts a peer's 8 too, and runs
 * with 9 bits because zlib-based peers (Node's ws among them) quietly
 * compress with 9 when 8 was agreed.
 */
#include "http/ws_deflate.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define OUT_CHUNK 16384     /* output room offered per zlib call */
#define IN_CHUNK (1u << 30) /* input per call: avail_in is a uInt */
#define MEM_LEVEL 8         /* zlib's default */

struct ty_wsd {
  ty_wsd_params p;
  z_stream def, inf;
  unsigned def_open : 1, inf_open : 1;
  unsigned ended : 1; /* the peer's stream ended inside this message */
};

static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};

ty_wsd *ty_wsd_new(const ty_wsd_params *p) {
  ty_wsd *d = calloc(1, sizeof *d);
  if (d)
    d->p = *p;
  return d;
}

void ty_wsd_free(ty_wsd *d) {
  if (!d)
    return;
  if (d->def_open)
    deflateEnd(&d->def);
  if (d->inf_open)
    inflateEnd(&d->inf);
  free(d);
}

int ty_wsd_wants(const ty_wsd *d, size_t n) { return n >= d->p.threshold; }

/* ---------------------------------------------------------------------- */
/* Compressing                                                            */

static int def_start(ty_wsd *d) {
  if (d->def_open)
    return 0;
  int small = d->p.our_bits < 9;
  int bits = small ? 9 : d->p.our_bits;
  if (deflateInit2(&d->def, d->p.level, Z_DEFLATED, -bits, MEM_LEVEL,
                   small ? Z_RLE : Z_DEFAULT_STRATEGY) != Z_OK)
    return -1;
  d->def_open = 1;
  return 0;
}

/* Points z's output at the free room of out (at least OUT_CHUNK bytes). */
static int room(z_stream *z, ty_buf *out, size_t want) {
  if (ty_buf_reserve(out, want) != 0)
    return -1;
  size_t n = out->cap - out->len;
  z->next_out = (Bytef *)out->p + out->len;
  z->avail_out = n > IN_CHUNK ? IN_CHUNK : (uInt)n;
  return 0;
}

int ty_wsd_compress(ty_wsd *d, const void *data, size_t n, ty_buf *out) {
  out->len = 0;
  if (def_start(d) != 0)
    return TY_WSD_NOMEM;
  const unsigned char *in = data;
  size_t left = n;
  do {
    uInt take = left > IN_CHUNK ? IN_CHUNK : (uInt)left;
    d->def.next_in = (Bytef *)in;
    d->def.avail_in = take;
    in += take;
    left -= take;
    int flush = left ? Z_NO_FLUSH : Z_SYNC_FLUSH;
    do { /* a call that fills the output may have more to give */
      if (room(&d->def, out, OUT_CHUNK) != 0)
        return TY_WSD_NOMEM;
      deflate(&d->def, flush); /* cannot fail with a valid stream */
      out->len = (size_t)((char *)d->def.next_out - out->p);
    } while (d->def.avail_out == 0);
  } while (left);
  /* A sync flush always ends with an empty stored block: its 4 bytes are
   * implied on the wire (RFC 7692 7.2.1). */
  if (out->len >= 4 && memcmp(out->p + out->len - 4, tail, 4) == 0)
    out->len -= 4;
  /* zlib makes nothing of an empty message right after a flush; the wire
   * needs an empty stored block's first byte (RFC 7692 7.2.3.6). */
  if (out->len == 0)
    out->p[out->len++] = 0x00;
  if (d->p.our_reset)
    deflateReset(&d->def);
  return TY_WSD_OK;
}

/* ---------------------------------------------------------------------- */
/* Decompressing                                                          */

static int inf_start(ty_wsd *d) {
  if (d->inf_open)
    return 0;
  int bits = d->p.peer_bits < 9 ? 9 : d->p.peer_bits;
  if (inflateInit2(&d->inf, -bits) != Z_OK)
    return -1;
  d->inf_open = 1;
  return 0;
}

/* Inflates p[0..n) onto out, which must not pass max bytes: the output
 * room offered never exceeds max + 1 - out->len, so a bomb costs at most
 * max + 1 bytes before it is caught. */
static int inflate_some(ty_wsd *d, const unsigned char *p, size_t n,
                        ty_buf *out, size_t max) {
  z_stream *z = &d->inf;
  z->next_in = (Bytef *)p;
  z->avail_in = (uInt)n; /* n <= a frame, checked against max_message */
  for (;;) {
    size_t want = max - out->len + 1;
    if (room(z, out, want < OUT_CHUNK ? want : OUT_CHUNK) != 0)
      return TY_WSD_NOMEM;
    if (z->avail_out > want)
      z->avail_out = (uInt)want;
    int rc = inflate(z, Z_SYNC_FLUSH);
    out->len = (size_t)((char *)z->next_out - out->p);
    if (out->len > max)
      return TY_WSD_TOO_BIG;
    if (rc == Z_STREAM_END) { /* see ty_wsd_inflate */
      d->ended = 1;
      return inflateReset(z) == Z_OK ? TY_WSD_OK : TY_WSD_CORRUPT;
    }
    if (rc == Z_MEM_ERROR)
      return TY_WSD_NOMEM;
    else if (rc != Z_OK && rc != Z_BUF_ERROR)
      return TY_WSD_CORRUPT;
    if (z->avail_in == 0 && z->avail_out != 0)
      return TY_WSD_OK;
    if (rc == Z_BUF_ERROR) /* no progress possible */
      return TY_WSD_OK;
  }
}

int ty_wsd_inflate(ty_wsd *d, const void *p, size_t n, int fin, ty_buf *out,
                   size_t max) {
  if (inf_start(d) != 0)
    return TY_WSD_NOMEM;
  if (n > UINT_MAX)
    return TY_WSD_TOO_BIG;
  /* A peer may end its deflate stream (a block with BFINAL) instead of
   * flushing it: what follows in the message, our tail included, is not
   * deflate data any more (RFC 7692 7.2.2), and its next message starts a
   * new stream. */
  int rc = d->ended ? TY_WSD_OK : inflate_some(d, p, n, out, max);
  if (rc == TY_WSD_OK && fin && !d->ended) {
    rc = inflate_some(d, tail, sizeof tail, out, max);
    /* The tail completes an empty stored block, so a whole message leaves
     * the inflater between blocks (zlib's data_type bit 128); anything else
     * is a message cut short or damaged. */
    if (rc == TY_WSD_OK && !d->ended && !(d->inf.data_type & 128))
      rc = TY_WSD_CORRUPT;
  }
  if (!fin || rc != TY_WSD_OK)
    return rc;
  if (d->p.peer_reset && !d->ended)
    inflateReset(&d->inf);
  d->ended = 0;
  return rc;
}
