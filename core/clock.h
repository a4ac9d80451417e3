/*
 * clock.h - the one clock convscope times things with.
 */
#ifndef CS_CLOCK_H
#define CS_CLOCK_H

/* Seconds on a monotonic clock (differences only: it does not tell the date). */
double cs_now(void);

#endif
