/*
 * The benchmark's C client: Tether through its C ABI, using only
 * include/tether.h, as a C app would. Built by scripts/bench.sh with gcc -O2
 * against target/release/libtether.a; run by examples/bench.rs.
 *
 *   bench_client URL RTT PIPE PIPE_WINDOW LARGE LARGE_WINDOW
 *
 * Speaks the protocol of every benchmark client (bench/README.md): each
 * workload once at a tenth of its size (warm-up), then measured; one JSON
 * line per result on stdout. A wrong or missing echo exits non-zero.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "tether.h"

#define SMALL 64
#define LARGE (1 << 20)
#define LIMIT_NS (120LL * 1000000000LL)

/* Tether's options for the throughput runs: the same as the Rust clients'. */
static const char *OPTIONS =
    "{\"queue\": {\"max_messages\": 100000, \"max_bytes\": 1073741824},"
    " \"max_unpolled_bytes\": 268435456, \"ping_interval_ms\": 0}";

static const char TEXT[SMALL + 1] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";

static void die(const char *what) {
  const char *why = ws_last_error();
  fprintf(stderr, "bench_client: %s%s%s\n", what, why ? ": " : "", why ? why : "");
  exit(1);
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static double cpu_secs(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

static ws_client *open_client(const char *url) {
  ws_client *c = NULL;
  if (ws_connect(url, OPTIONS, &c) != WS_OK) die("ws_connect");
  ws_event ev;
  int64_t deadline = now_ns() + LIMIT_NS;
  while (now_ns() < deadline) {
    ws_status s = ws_poll_event(c, 10000, &ev);
    if (s == WS_OK && ev.kind == WS_EVENT_OPEN) return c;
    if (s != WS_OK && s != WS_TIMEOUT) die("ws_poll_event while connecting");
  }
  die("no open");
  return NULL;
}

static void shut(ws_client *c) {
  ws_close(c, 1000, NULL);
  ws_free(c);
}

static void check(const ws_event *ev, size_t size, const uint8_t *expected) {
  ws_event_kind want = size == SMALL ? WS_EVENT_TEXT : WS_EVENT_BINARY;
  if (ev->kind != want || ev->len != size) die("echo of the wrong kind or length");
  if (size == SMALL ? memcmp(ev->data, expected, size) != 0
                    : (ev->data[0] != expected[0] || ev->data[size - 1] != expected[size - 1]))
    die("echo with other bytes");
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* n sequential round trips of a 64 B text; the time of each, sorted. */
static int64_t *round_trips(const char *url, size_t n) {
  ws_client *c = open_client(url);
  int64_t *samples = malloc(n * sizeof *samples);
  if (!samples) die("malloc");
  ws_event ev;
  for (size_t i = 0; i < n; i++) {
    int64_t t = now_ns();
    if (ws_send(c, WS_TEXT, (const uint8_t *)TEXT, SMALL) != WS_OK) die("ws_send");
    for (;;) {
      if (ws_poll_event(c, 10000, &ev) != WS_OK) die("no echo");
      if (ev.kind == WS_EVENT_TEXT || ev.kind == WS_EVENT_BINARY) break;
    }
    samples[i] = now_ns() - t;
    check(&ev, SMALL, (const uint8_t *)TEXT);
  }
  shut(c);
  qsort(samples, n, sizeof *samples, cmp_i64);
  return samples;
}

/* n messages of size bytes, at most window in flight; the elapsed ns. */
static int64_t stream(const char *url, size_t size, size_t n, size_t window,
                      const uint8_t *payload) {
  ws_client *c = open_client(url);
  ws_message_kind kind = size == SMALL ? WS_TEXT : WS_BINARY;
  size_t sent = 0, got = 0;
  ws_event ev;
  int64_t start = now_ns();
  while (got < n) {
    if (now_ns() - start > LIMIT_NS) die("stream timed out");
    while (sent < n && sent - got < window) {
      ws_status s = ws_send(c, kind, payload, size);
      if (s == WS_OK) {
        sent++;
      } else if (s == WS_ERR_QUEUE_FULL) {
        break;
      } else {
        die("ws_send");
      }
    }
    /* Drain what is there, then wait for at least one more. */
    int32_t timeout = 10000;
    while (ws_poll_event(c, timeout, &ev) == WS_OK) {
      if (ev.kind == WS_EVENT_TEXT || ev.kind == WS_EVENT_BINARY) {
        check(&ev, size, payload);
        got++;
      }
      timeout = 0;
    }
  }
  int64_t elapsed = now_ns() - start;
  shut(c);
  return elapsed;
}

static size_t arg(char **argv, int i) {
  char *end;
  unsigned long long v = strtoull(argv[i], &end, 10);
  if (*end || v == 0) {
    fprintf(stderr, "bench_client: bad argument %s\n", argv[i]);
    exit(2);
  }
  return (size_t)v;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s URL RTT PIPE PIPE_WINDOW LARGE LARGE_WINDOW\n", argv[0]);
    return 2;
  }
  const char *url = argv[1];
  size_t rtt = arg(argv, 2), pipe = arg(argv, 3), pipe_window = arg(argv, 4);
  size_t large = arg(argv, 5), large_window = arg(argv, 6);
  uint8_t *big = malloc(LARGE);
  if (!big) die("malloc");
  for (size_t i = 0; i < LARGE; i++) big[i] = (uint8_t)(i % 251);
  const uint8_t *text = (const uint8_t *)TEXT;

  printf("{\"version\": \"tether %s (C ABI, header %d.%d.%d; %s)\"}\n", ws_version(),
         TETHER_VERSION_MAJOR, TETHER_VERSION_MINOR, TETHER_VERSION_PATCH,
#ifdef __VERSION__
         "gcc " __VERSION__
#else
         "cc"
#endif
  );
  fflush(stdout);

  /* Warm-up: a tenth of each workload. */
  free(round_trips(url, rtt / 10 ? rtt / 10 : 1));
  stream(url, SMALL, pipe / 10 ? pipe / 10 : 1, pipe_window, text);
  stream(url, LARGE, large / 10 ? large / 10 : 1, large_window, big);

  int64_t *s = round_trips(url, rtt);
  size_t p99 = rtt * 99 / 100 < rtt ? rtt * 99 / 100 : rtt - 1;
  printf("{\"workload\": \"rtt\", \"n\": %zu, \"p50_us\": %.3f, \"p99_us\": %.3f}\n", rtt,
         s[rtt / 2] / 1e3, s[p99] / 1e3);
  fflush(stdout);
  free(s);

  double cpu = cpu_secs();
  int64_t ns = stream(url, SMALL, pipe, pipe_window, text);
  cpu = cpu_secs() - cpu;
  printf("{\"workload\": \"pipelined\", \"n\": %zu, \"secs\": %.6f, \"cpu_secs\": %.6f}\n", pipe,
         ns / 1e9, cpu);
  fflush(stdout);

  cpu = cpu_secs();
  ns = stream(url, LARGE, large, large_window, big);
  cpu = cpu_secs() - cpu;
  printf("{\"workload\": \"large\", \"n\": %zu, \"secs\": %.6f, \"cpu_secs\": %.6f}\n", large,
         ns / 1e9, cpu);
  fflush(stdout);
  free(big);
  return 0;
}
