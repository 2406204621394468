/* limits.h: every size and timeout default in one place. Each is
 * overridable per server through tycho.http.serve{...} options. */
#ifndef TY_LIMITS_H
#define TY_LIMITS_H

#define TY_MAX_HEADER_BYTES (16 * 1024)  /* request line + headers -> 431 */
#define TY_MAX_HEADERS 100               /* header lines -> 431 */
#define TY_MAX_BODY_BYTES (1024 * 1024)  /* request body -> 413 */
#define TY_HEADER_TIMEOUT_MS 10000       /* whole head must arrive by then */
#define TY_KEEPALIVE_TIMEOUT_MS 5000     /* idle keep-alive connection */
#define TY_BODY_TIMEOUT_MS 10000         /* gap between body reads -> 408 */
#define TY_LINGER_TIMEOUT_MS 2000        /* drain after we half-close */
#define TY_MAX_CONNECTIONS 10000         /* excess get 503 and a close */
#define TY_WRITE_HIGH_WATER (256 * 1024) /* res:write waits above this */
#define TY_BODY_HIGH_WATER (256 * 1024)  /* unread req:chunks(): pause reads */
#define TY_SWEEP_INTERVAL_MS 500         /* timeout check period */
#define TY_READ_BUFFER (64 * 1024)       /* shared read buffer */
#define TY_CPU_LIMIT_MS 0                /* handler run time -> 503; 0 off */
#define TY_CPU_HOOK_COUNT 1000           /* VM instructions between checks */

#endif
