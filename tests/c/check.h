/*
 * Small helpers shared by the C ABI tests (the .c files of tests/c).
 *
 * Each test is a C11 program that exits 0 on success; on failure it prints
 * "file:line: FAIL: ..." with what was expected and what came, plus this
 * thread's ws_last_error(), and exits 1. Written from include/tether.h only.
 *
 * Every .c file defines _POSIX_C_SOURCE before including this header
 * (clock_gettime, nanosleep).
 */
#ifndef TETHER_TEST_CHECK_H
#define TETHER_TEST_CHECK_H

#ifndef _POSIX_C_SOURCE
#error "define _POSIX_C_SOURCE 200809L before including check.h"
#endif

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <signal.h>
#include <unistd.h>

#include "tether.h"

/* Upper bound on the wait for any single expected event. */
#define EVENT_WAIT_MS 20000

static inline const char *status_name(int s) {
  switch (s) {
  case WS_OK: return "WS_OK";
  case WS_TIMEOUT: return "WS_TIMEOUT";
  case WS_ERR_NULL_ARGUMENT: return "WS_ERR_NULL_ARGUMENT";
  case WS_ERR_INVALID_ARGUMENT: return "WS_ERR_INVALID_ARGUMENT";
  case WS_ERR_QUEUE_FULL: return "WS_ERR_QUEUE_FULL";
  case WS_ERR_CLOSED: return "WS_ERR_CLOSED";
  case WS_ERR_INTERNAL: return "WS_ERR_INTERNAL";
  default: return "(unknown ws_status)";
  }
}

static inline const char *event_name(int k) {
  switch (k) {
  case WS_EVENT_STATE: return "WS_EVENT_STATE";
  case WS_EVENT_OPEN: return "WS_EVENT_OPEN";
  case WS_EVENT_TEXT: return "WS_EVENT_TEXT";
  case WS_EVENT_BINARY: return "WS_EVENT_BINARY";
  case WS_EVENT_CLOSED: return "WS_EVENT_CLOSED";
  case WS_EVENT_RECONNECTING: return "WS_EVENT_RECONNECTING";
  case WS_EVENT_ERROR: return "WS_EVENT_ERROR";
  case WS_EVENT_TERMINATED: return "WS_EVENT_TERMINATED";
  case WS_EVENT_RESENT: return "WS_EVENT_RESENT";
  default: return "(unknown ws_event_kind)";
  }
}

static inline const char *state_name(int s) {
  switch (s) {
  case WS_STATE_CONNECTING: return "WS_STATE_CONNECTING";
  case WS_STATE_OPEN: return "WS_STATE_OPEN";
  case WS_STATE_RECONNECTING: return "WS_STATE_RECONNECTING";
  case WS_STATE_CLOSING: return "WS_STATE_CLOSING";
  case WS_STATE_CLOSED: return "WS_STATE_CLOSED";
  default: return "(unknown ws_state)";
  }
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5), noreturn))
#endif
static inline void fail_at(const char *file, int line, const char *what, const char *fmt, ...) {
  va_list ap;
  const char *err = ws_last_error();
  fflush(stdout);
  fprintf(stderr, "%s:%d: FAIL: %s: ", file, line, what);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n  (ws_last_error() on this thread: %s%s%s)\n", err ? "\"" : "",
          err ? err : "NULL", err ? "\"" : "");
  fflush(stderr);
  exit(1);
}

/* CHECK(cond, fmt, ...): fails with the printf-style message unless cond. */
#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) fail_at(__FILE__, __LINE__, "CHECK(" #cond ")", __VA_ARGS__); \
  } while (0)

/* CHECK_STATUS(call, expected): the call must return `expected`. */
#define CHECK_STATUS(call, expected)                                                   \
  do {                                                                                 \
    int got_ = (int)(call);                                                            \
    int want_ = (int)(expected);                                                       \
    if (got_ != want_)                                                                 \
      fail_at(__FILE__, __LINE__, #call, "returned %s (%d), expected %s (%d)",         \
              status_name(got_), got_, status_name(want_), want_);                     \
  } while (0)

/*
 * CHECK_FAILS(call, expected): the call must return the failure status
 * `expected` and leave a non-empty message in ws_last_error().
 */
#define CHECK_FAILS(call, expected)                                                    \
  do {                                                                                 \
    const char *msg_;                                                                  \
    CHECK_STATUS(call, expected);                                                      \
    msg_ = ws_last_error();                                                            \
    if (msg_ == NULL || msg_[0] == '\0')                                               \
      fail_at(__FILE__, __LINE__, #call,                                               \
              "returned %s as expected, but ws_last_error() is %s", #expected,        \
              msg_ ? "empty" : "NULL");                                                \
    printf("  ok: %s -> %s: \"%s\"\n", #call, #expected, msg_);                        \
  } while (0)

static inline int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/*
 * Watchdog: a call that blocks for ever (a poller never woken, ...) ends
 * the test with a message naming the current stage instead of a silent
 * hang until the driver's kill.
 */
static const char *volatile watchdog_stage = "start";
#define STAGE(s)                                                               \
  do {                                                                         \
    watchdog_stage = (s);                                                      \
    printf("stage: %s\n", (s));                                                \
    fflush(stdout);                                                            \
  } while (0)

static inline void watchdog_fired(int sig) {
  const char *a = "FAIL: watchdog: the test did not finish in time; stuck in stage: ";
  const char *b = watchdog_stage;
  ssize_t r;
  (void)sig;
  r = write(2, a, strlen(a));
  r = write(2, b, strlen(b));
  r = write(2, "\n", 1);
  (void)r;
  _exit(3);
}

/* Call first in main: line-buffered stdout (kept if the test crashes) and
 * the watchdog. */
static inline void test_begin(unsigned watchdog_seconds) {
  struct sigaction sa;
  setvbuf(stdout, NULL, _IOLBF, 0);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = watchdog_fired;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  alarm(watchdog_seconds);
}

/* Prints one event on stdout (shown by the driver when a test fails). */
static inline void print_event(const ws_event *ev) {
  printf("  event %s state=%s len=%zu close_code=%u error=%d attempt=%u delay_ms=%llu",
         event_name(ev->kind), state_name(ev->state), ev->len, (unsigned)ev->close_code,
         (int)ev->error, (unsigned)ev->attempt, (unsigned long long)ev->delay_ms);
  if ((ev->kind == WS_EVENT_CLOSED || ev->kind == WS_EVENT_ERROR || ev->kind == WS_EVENT_OPEN) &&
      ev->data != NULL)
    printf(" data=\"%.*s\"", (int)ev->len, (const char *)ev->data);
  printf("\n");
}

/*
 * Waits for the next event of `c`, at most until `deadline` (now_ms()
 * time). Anything but WS_OK / WS_TIMEOUT, or the deadline, fails the test.
 */
static inline ws_event next_event_at(const char *file, int line, ws_client *c, int64_t deadline) {
  int i;
  /* Bounded: each round waits up to 100 ms, and the deadline is checked. */
  for (i = 0; i < 1000000; i++) {
    ws_event ev;
    int64_t left = deadline - now_ms();
    ws_status s;
    if (left <= 0) break;
    s = ws_poll_event(c, (int32_t)(left < 100 ? left : 100), &ev);
    if (s == WS_OK) return ev;
    if (s != WS_TIMEOUT)
      fail_at(file, line, "ws_poll_event", "returned %s (%d), expected WS_OK or WS_TIMEOUT",
              status_name(s), (int)s);
  }
  fail_at(file, line, "ws_poll_event", "no event before the deadline");
}
#define NEXT_EVENT(c, deadline) next_event_at(__FILE__, __LINE__, (c), (deadline))

/* The event's data must be `len` bytes equal to `want`. */
#define CHECK_DATA(ev, want, want_len)                                                 \
  do {                                                                                 \
    size_t wl_ = (want_len);                                                           \
    CHECK((ev).len == wl_, "%s: len %zu, expected %zu", event_name((ev).kind),         \
          (ev).len, wl_);                                                              \
    if (wl_ > 0) {                                                                     \
      CHECK((ev).data != NULL, "%s: data is NULL with len %zu", event_name((ev).kind), \
            wl_);                                                                      \
      CHECK(memcmp((ev).data, (want), wl_) == 0, "%s: payload differs from what was sent", \
            event_name((ev).kind));                                                    \
    }                                                                                  \
  } while (0)

/* A NUL-terminated `.data` of an OPEN / CLOSED / ERROR event. */
#define CHECK_NUL_TERMINATED(ev)                                                       \
  do {                                                                                 \
    if ((ev).data != NULL)                                                             \
      CHECK((ev).data[(ev).len] == '\0', "%s: data is not NUL-terminated at len %zu",  \
            event_name((ev).kind), (ev).len);                                          \
  } while (0)

#endif /* TETHER_TEST_CHECK_H */
