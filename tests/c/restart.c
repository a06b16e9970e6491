/*
 * Survives its server being killed and restarted twice: every message
 * handed to ws_send while the server was down arrives after the reopen,
 * in order, exactly once.
 *
 * The driver (tests/c_abi.rs) watches stdout: on "READY 0" it kills the
 * server; on "QUEUED n" it restarts it on the same port.
 *
 * usage: restart ws://127.0.0.1:PORT/echo
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#define ROUNDS 2
#define PER_ROUND 10

/* Polls until an event of `kind`; fails on TERMINATED or on any text. */
static void wait_for(int line, ws_client *c, ws_event_kind kind) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  int i;
  for (i = 0; i < 1000; i++) {
    ws_event ev = next_event_at(__FILE__, line, c, deadline);
    print_event(&ev);
    if (ev.kind == kind) return;
    if (ev.kind == WS_EVENT_TEXT || ev.kind == WS_EVENT_TERMINATED)
      fail_at(__FILE__, line, "wait_for", "unexpected %s while waiting for %s",
              event_name(ev.kind), event_name(kind));
  }
  fail_at(__FILE__, line, "wait_for", "no %s within 1000 events", event_name(kind));
}

int main(int argc, char **argv) {
  ws_client *c = NULL;
  ws_client_stats stats;
  int round, i;
  test_begin(90);
  CHECK(argc >= 2, "usage: restart URL");
  CHECK_STATUS(ws_connect(argv[1],
                          "{\"reconnect\": {\"initial_delay_ms\": 50, \"max_delay_ms\": 400},"
                          " \"ping_interval_ms\": 1000, \"pong_timeout_ms\": 1000}",
                          &c),
               WS_OK);
  wait_for(__LINE__, c, WS_EVENT_OPEN);
  printf("READY 0\n");

  for (round = 1; round <= ROUNDS; round++) {
    STAGE("server killed: wait for the loss");
    wait_for(__LINE__, c, WS_EVENT_RECONNECTING);
    for (i = 0; i < PER_ROUND; i++) {
      char msg[64];
      int n = snprintf(msg, sizeof msg, "round %d message %d", round, i);
      CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)msg, (size_t)n), WS_OK);
    }
    CHECK_STATUS(ws_stats(c, &stats), WS_OK);
    CHECK(stats.queued_messages == PER_ROUND, "queued %llu, expected %d",
          (unsigned long long)stats.queued_messages, PER_ROUND);
    printf("QUEUED %d\n", round);

    STAGE("server restarted: the backlog arrives once, in order");
    wait_for(__LINE__, c, WS_EVENT_OPEN);
    for (i = 0; i < PER_ROUND; i++) {
      char want[64];
      int n = snprintf(want, sizeof want, "round %d message %d", round, i);
      int64_t deadline = now_ms() + EVENT_WAIT_MS;
      ws_event ev;
      int polls = 0;
      do {
        ev = NEXT_EVENT(c, deadline);
        print_event(&ev);
        CHECK(ev.kind != WS_EVENT_TERMINATED, "terminated while waiting for echoes");
      } while (ev.kind != WS_EVENT_TEXT && ++polls < 100);
      CHECK(ev.kind == WS_EVENT_TEXT, "no echo %d of round %d", i, round);
      CHECK_DATA(ev, want, (size_t)n);
    }
    printf("DELIVERED %d\n", round);
    if (round < ROUNDS) printf("READY %d\n", round);
  }

  STAGE("nothing arrives twice");
  {
    int64_t end = now_ms() + 500;
    int polls = 0;
    while (now_ms() < end && polls++ < 1000) {
      ws_event ev;
      ws_status s = ws_poll_event(c, 50, &ev);
      if (s == WS_TIMEOUT) continue;
      CHECK(s == WS_OK, "poll returned %s", status_name(s));
      CHECK(ev.kind != WS_EVENT_TEXT, "a message arrived twice: %.*s", (int)ev.len,
            (const char *)ev.data);
    }
  }

  CHECK_STATUS(ws_close(c, 1000, "done"), WS_OK);
  {
    int64_t deadline = now_ms() + EVENT_WAIT_MS;
    ws_event ev;
    int polls = 0;
    do {
      ev = NEXT_EVENT(c, deadline);
    } while (ev.kind != WS_EVENT_TERMINATED && ++polls < 100);
    CHECK(ev.kind == WS_EVENT_TERMINATED, "no WS_EVENT_TERMINATED after ws_close");
  }
  ws_free(c);
  printf("restart: all checks passed\n");
  return 0;
}
