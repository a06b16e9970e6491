/*
 * One thread blocks in ws_poll_event(c, -1, &ev) while another sends and
 * closes: the poller sees every echo in order, is woken by the close and
 * reaches WS_EVENT_TERMINATED; then join and ws_free.
 *
 *   1. 1000 messages (text and binary mixed), then ws_close(1000, "done").
 *   2. ws_close while the poller is blocked on an idle connection, and a
 *      second concurrent poller is refused meanwhile.
 *
 * usage: threads ws://127.0.0.1:PORT/echo
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"

#define MESSAGES 1000
#define MAX_EVENTS (MESSAGES + 100)

struct poller {
  ws_client *c;
  int expected_messages;
  atomic_int opened;
  /* ws_poll_event calls started, and the number of the one that
   * returned WS_EVENT_OPEN. */
  atomic_int calls;
  atomic_int open_call;
  atomic_int done;
  /* Read by main after join. */
  int messages;
  int closed_events;
};

static void message_for(int i, char *buf, size_t size, size_t *len, ws_message_kind *kind) {
  int n = snprintf(buf, size, "message %04d", i);
  *len = (size_t)n;
  *kind = (i % 3 == 2) ? WS_BINARY : WS_TEXT;
}

static void *poll_thread(void *arg) {
  struct poller *p = arg;
  int i;
  const char *err = ws_last_error();
  /* Another thread failed before this one started: errors are per thread. */
  CHECK(err == NULL, "ws_last_error() in a new thread is \"%s\", expected NULL", err);
  for (i = 0; i < MAX_EVENTS; i++) {
    ws_event ev;
    int call = atomic_fetch_add(&p->calls, 1) + 1;
    ws_status s = ws_poll_event(p->c, -1, &ev);
    CHECK(s == WS_OK, "ws_poll_event(c, -1, &ev) in the poller returned %s, expected WS_OK",
          status_name(s));
    if (ev.kind != WS_EVENT_TEXT && ev.kind != WS_EVENT_BINARY) print_event(&ev);
    switch (ev.kind) {
    case WS_EVENT_OPEN:
      atomic_store(&p->open_call, call);
      atomic_store(&p->opened, 1);
      break;
    case WS_EVENT_TEXT:
    case WS_EVENT_BINARY: {
      char want[64];
      size_t want_len;
      ws_message_kind kind;
      CHECK(p->messages < p->expected_messages, "more echoes than the %d messages sent",
            p->expected_messages);
      message_for(p->messages, want, sizeof want, &want_len, &kind);
      CHECK(ev.kind == (kind == WS_TEXT ? WS_EVENT_TEXT : WS_EVENT_BINARY),
            "echo #%d is %s, expected %s", p->messages, event_name(ev.kind),
            kind == WS_TEXT ? "WS_EVENT_TEXT" : "WS_EVENT_BINARY");
      CHECK(ev.len == want_len && memcmp(ev.data, want, want_len) == 0,
            "echo #%d is \"%.*s\", expected \"%s\" (out of order or corrupted)", p->messages,
            (int)ev.len, (const char *)ev.data, want);
      p->messages++;
      break;
    }
    case WS_EVENT_CLOSED:
      p->closed_events++;
      CHECK(p->messages == p->expected_messages,
            "WS_EVENT_CLOSED after %d echoes, expected all %d first (the Close frame goes "
            "out after the queued messages)",
            p->messages, p->expected_messages);
      CHECK(ev.close_code == 1000, "WS_EVENT_CLOSED close_code %u, expected 1000",
            (unsigned)ev.close_code);
      CHECK(ev.len == 4 && ev.data != NULL && memcmp(ev.data, "done", 4) == 0,
            "WS_EVENT_CLOSED reason \"%.*s\", expected \"done\"", (int)ev.len,
            ev.data ? (const char *)ev.data : "");
      break;
    case WS_EVENT_TERMINATED:
      CHECK(p->messages == p->expected_messages, "WS_EVENT_TERMINATED after %d echoes of %d",
            p->messages, p->expected_messages);
      CHECK(p->closed_events == 1, "%d WS_EVENT_CLOSED before WS_EVENT_TERMINATED, expected 1",
            p->closed_events);
      atomic_store(&p->done, 1);
      return NULL;
    case WS_EVENT_STATE:
      break;
    default:
      fail_at(__FILE__, __LINE__, "poller", "unexpected %s", event_name(ev.kind));
    }
  }
  fail_at(__FILE__, __LINE__, "poller", "no WS_EVENT_TERMINATED within %d events", MAX_EVENTS);
}

/* Waits (bounded) until `flag` is set. */
static void wait_flag(int line, atomic_int *flag, int64_t timeout_ms, const char *what) {
  int64_t deadline = now_ms() + timeout_ms;
  while (!atomic_load(flag)) {
    if (now_ms() > deadline)
      fail_at(__FILE__, line, what, "not within %lld ms", (long long)timeout_ms);
    sleep_ms(2);
  }
}

static void start_poller(struct poller *p, pthread_t *t, const char *url, int expected) {
  memset(p, 0, sizeof *p);
  atomic_init(&p->opened, 0);
  atomic_init(&p->calls, 0);
  atomic_init(&p->open_call, 0);
  atomic_init(&p->done, 0);
  p->expected_messages = expected;
  CHECK_STATUS(ws_connect(url, NULL, &p->c), WS_OK);
  CHECK(pthread_create(t, NULL, poll_thread, p) == 0, "pthread_create failed");
}

/* Waits until the poller is blocked in the ws_poll_event call after OPEN. */
static void wait_poller_blocked(struct poller *p) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  wait_flag(__LINE__, &p->opened, EVENT_WAIT_MS, "WS_EVENT_OPEN in the poller");
  while (atomic_load(&p->calls) <= atomic_load(&p->open_call)) {
    CHECK(now_ms() < deadline, "the poller did not call ws_poll_event again after OPEN");
    sleep_ms(1);
  }
  sleep_ms(150); /* from the call counter into the blocking wait */
}

static void finish(struct poller *p, pthread_t t, const char *what) {
  /* ws_close must wake the poller: a hang here is the bug under test. */
  wait_flag(__LINE__, &p->done, 30000, what);
  CHECK(pthread_join(t, NULL) == 0, "pthread_join failed");
  CHECK_FAILS(ws_poll_event(p->c, -1, &(ws_event){0}), WS_ERR_CLOSED);
  ws_free(p->c);
}

int main(int argc, char **argv) {
  const char *url;
  struct poller p;
  pthread_t t;
  size_t live_before;
  int i;

  test_begin(55);
  if (argc < 2) {
    fprintf(stderr, "usage: %s ws://127.0.0.1:PORT/path\n", argv[0]);
    return 2;
  }
  url = argv[1];
  live_before = ws_live_clients();
  /* Leave an error on the main thread; the poller must not see it. */
  CHECK_FAILS(ws_send(NULL, WS_TEXT, NULL, 0), WS_ERR_NULL_ARGUMENT);

  STAGE("1: 1000 messages from main while another thread polls with -1");
  start_poller(&p, &t, url, MESSAGES);
  wait_flag(__LINE__, &p.opened, EVENT_WAIT_MS, "WS_EVENT_OPEN in the poller");
  for (i = 0; i < MESSAGES; i++) {
    char buf[64];
    size_t len;
    ws_message_kind kind;
    ws_status s;
    message_for(i, buf, sizeof buf, &len, &kind);
    s = ws_send(p.c, kind, (const uint8_t *)buf, len);
    CHECK(s == WS_OK, "ws_send of message %d returned %s, expected WS_OK", i, status_name(s));
  }
  {
    ws_client_stats st;
    CHECK_STATUS(ws_stats(p.c, &st), WS_OK); /* while the poller polls */
  }
  CHECK_STATUS(ws_close(p.c, 1000, "done"), WS_OK);
  STAGE("1: wait for the poller to reach WS_EVENT_TERMINATED");
  finish(&p, t, "1: the poller reaching WS_EVENT_TERMINATED after ws_close");
  CHECK(p.messages == MESSAGES, "%d echoes, expected %d", p.messages, MESSAGES);

  STAGE("2: a second poller is refused, ws_close wakes the blocked one");
  start_poller(&p, &t, url, 0);
  wait_poller_blocked(&p);
  {
    ws_event ev, sentinel;
    ws_status second_poller = WS_TIMEOUT;
    memset(&sentinel, 0xA5, sizeof sentinel);
    /* WS_TIMEOUT means the poller was not inside yet (a slow machine):
     * nothing is pending either way, so try again a little later. */
    for (i = 0; i < 50 && second_poller == WS_TIMEOUT; i++) {
      ev = sentinel;
      second_poller = ws_poll_event(p.c, 0, &ev);
      if (second_poller == WS_TIMEOUT) sleep_ms(100);
    }
    CHECK_FAILS(second_poller, WS_ERR_INVALID_ARGUMENT);
    CHECK(memcmp(&ev, &sentinel, sizeof ev) == 0, "refused ws_poll_event wrote to *out");
  }
  CHECK_STATUS(ws_close(p.c, 1000, "done"), WS_OK);
  STAGE("2: wait for the blocked poller to be woken");
  finish(&p, t, "2: ws_close waking a poller blocked on an idle connection");

  CHECK(ws_live_clients() == live_before, "ws_live_clients() is %zu after ws_free, expected %zu",
        ws_live_clients(), live_before);
  printf("threads: all checks passed\n");
  return 0;
}
