/* ws_deflate.h: permessage-deflate (RFC 7692) for one WebSocket
 * connection: the compressor and decompressor with the parameters the
 * handshake agreed on. websocket.c owns the framing around it. */
#ifndef TY_WS_DEFLATE_H
#define TY_WS_DEFLATE_H

#include "http/http.h"

/* What the handshake agreed on, seen from our side of the connection. */
typedef struct {
  int level;        /* zlib level for our messages, 0..9 */
  size_t threshold; /* messages shorter than this are sent uncompressed */
  int our_bits;     /* our compressor's window, 8..15 */
  int peer_bits;    /* the peer's window (our decompressor's), 8..15 */
  int our_reset;    /* our compressor starts afresh for every message */
  int peer_reset;   /* so does the peer's */
} ty_wsd_params;

typedef struct ty_wsd ty_wsd;

enum {
  TY_WSD_OK = 0,
  TY_WSD_NOMEM = -1,
  TY_WSD_TOO_BIG = -2,
  TY_WSD_CORRUPT = -3
};

ty_wsd *ty_wsd_new(const ty_wsd_params *p); /* NULL: no memory */
void ty_wsd_free(ty_wsd *d);                /* NULL is fine */

/* Should a message of n bytes be compressed? */
int ty_wsd_wants(const ty_wsd *d, size_t n);

/* Compresses one whole message into out (emptied first), without the
 * 00 00 ff ff tail. Returns TY_WSD_OK or TY_WSD_NOMEM. */
int ty_wsd_compress(ty_wsd *d, const void *p, size_t n, ty_buf *out);

/* Inflates one frame's payload of a compressed message, appending to out;
 * fin: the message's last frame (the tail is added). Fails with
 * TY_WSD_TOO_BIG as soon as out would pass max bytes (the rest is not
 * inflated), TY_WSD_CORRUPT on bad data, TY_WSD_NOMEM. */
int ty_wsd_inflate(ty_wsd *d, const void *p, size_t n, int fin, ty_buf *out,
                   size_t max);

#endif
