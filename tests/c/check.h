/* check.h: the one assertion the C tests share: counts failures and goes
 * on, so one run reports every broken check. */
#ifndef TY_TEST_CHECK_H
#define TY_TEST_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

#endif
