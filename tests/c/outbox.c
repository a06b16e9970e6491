/*
 * The durable outbox through the C ABI: ws_send_tracked gives growing ids,
 * untracked messages leave once delivered, tracked ones stay until ws_ack,
 * a client opened again on the file sends what was left and reports the
 * tracked ids it sent again (WS_EVENT_RESENT); a second owner of an open
 * outbox, and outbox calls without one, are clear errors.
 *
 * usage: outbox ws://127.0.0.1:PORT/echo DIR
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

static char options[1024];

static ws_client *open_outbox(int line, const char *url) {
  ws_client *c = NULL;
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  int i;
  if (ws_connect(url, options, &c) != WS_OK)
    fail_at(__FILE__, line, "ws_connect", "%s", ws_last_error());
  for (i = 0; i < 100; i++) {
    ws_event ev = next_event_at(__FILE__, line, c, deadline);
    print_event(&ev);
    if (ev.kind == WS_EVENT_OPEN) return c;
    if (ev.kind == WS_EVENT_TERMINATED) fail_at(__FILE__, line, "open", "terminated");
  }
  fail_at(__FILE__, line, "open", "no WS_EVENT_OPEN");
}

static uint64_t pending(ws_client *c) {
  uint64_t n = 0;
  CHECK_STATUS(ws_outbox_pending(c, &n), WS_OK);
  return n;
}

/* Polls (events included) until the outbox holds `want`. */
static void wait_pending(int line, ws_client *c, uint64_t want) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  while (pending(c) != want) {
    ws_event ev;
    if (now_ms() > deadline)
      fail_at(__FILE__, line, "ws_outbox_pending", "holds %llu, expected %llu",
              (unsigned long long)pending(c), (unsigned long long)want);
    if (ws_poll_event(c, 10, &ev) == WS_OK) print_event(&ev);
  }
}

static void close_and_free(ws_client *c) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  int i;
  CHECK_STATUS(ws_close(c, 1000, NULL), WS_OK);
  for (i = 0; i < 1000; i++) {
    ws_event ev = NEXT_EVENT(c, deadline);
    print_event(&ev);
    if (ev.kind == WS_EVENT_TERMINATED) break;
  }
  ws_free(c);
}

int main(int argc, char **argv) {
  ws_client *c, *second = NULL, *plain;
  uint64_t first_id = 0, second_id = 0, n = 0;
  int64_t deadline;
  int texts = 0, resent = 0, i;
  test_begin(90);
  CHECK(argc >= 3, "usage: outbox URL DIR");
  snprintf(options, sizeof options,
           "{\"outbox\": {\"path\": \"%s/outbox.db\"}, \"ping_interval_ms\": 0,"
           " \"reconnect\": {\"initial_delay_ms\": 50}}",
           argv[2]);

  STAGE("tracked and untracked sends");
  c = open_outbox(__LINE__, argv[1]);
  CHECK_STATUS(ws_send_tracked(c, WS_TEXT, (const uint8_t *)"t1", 2, &first_id), WS_OK);
  CHECK_STATUS(ws_send_tracked(c, WS_BINARY, (const uint8_t *)"t2", 2, &second_id), WS_OK);
  CHECK(second_id > first_id, "ids %llu then %llu", (unsigned long long)first_id,
        (unsigned long long)second_id);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"plain", 5), WS_OK);
  CHECK_FAILS(ws_send_tracked(c, WS_TEXT, (const uint8_t *)"\xff", 1, &n), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_send_tracked(c, WS_TEXT, (const uint8_t *)"x", 1, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_outbox_pending(c, NULL), WS_ERR_NULL_ARGUMENT);

  STAGE("a second owner of the same outbox is refused");
  CHECK_FAILS(ws_connect(argv[1], options, &second), WS_ERR_INVALID_ARGUMENT);
  CHECK(second == NULL, "out written on failure");
  CHECK(strstr(ws_last_error(), "in use") != NULL, "reason: %s", ws_last_error());

  STAGE("delivered untracked messages leave; tracked ones wait for their ack");
  deadline = now_ms() + EVENT_WAIT_MS;
  while (texts < 3) {
    ws_event ev = NEXT_EVENT(c, deadline);
    print_event(&ev);
    if (ev.kind == WS_EVENT_TEXT || ev.kind == WS_EVENT_BINARY) texts++;
  }
  wait_pending(__LINE__, c, 2);
  CHECK_STATUS(ws_ack(c, first_id), WS_OK);
  CHECK_FAILS(ws_ack(c, first_id), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_ack(c, 999999), WS_ERR_INVALID_ARGUMENT);
  CHECK(pending(c) == 1, "holds %llu after the ack", (unsigned long long)pending(c));
  close_and_free(c);

  STAGE("reopened: what was left goes out again, reported by id");
  c = open_outbox(__LINE__, argv[1]);
  deadline = now_ms() + EVENT_WAIT_MS;
  for (i = 0; i < 100 && !(resent && texts > 3); i++) {
    ws_event ev = NEXT_EVENT(c, deadline);
    print_event(&ev);
    if (ev.kind == WS_EVENT_BINARY) {
      CHECK_DATA(ev, "t2", 2);
      texts++;
    }
    if (ev.kind == WS_EVENT_RESENT) {
      const uint64_t *ids = (const uint64_t *)(const void *)ev.data;
      CHECK(ev.len == sizeof(uint64_t), "len %zu", ev.len);
      CHECK(((uintptr_t)ev.data % sizeof(uint64_t)) == 0, "ids are not aligned");
      CHECK(ids[0] == second_id, "resent id %llu, expected %llu", (unsigned long long)ids[0],
            (unsigned long long)second_id);
      resent = 1;
    }
  }
  CHECK(resent && texts > 3, "no resend of t2 (resent %d, texts %d)", resent, texts);
  CHECK_STATUS(ws_ack(c, second_id), WS_OK);
  wait_pending(__LINE__, c, 0);
  close_and_free(c);

  STAGE("no outbox: the outbox calls say so");
  CHECK_STATUS(ws_connect(argv[1], "{\"ping_interval_ms\": 0}", &plain), WS_OK);
  CHECK_FAILS(ws_send_tracked(plain, WS_TEXT, (const uint8_t *)"x", 1, &n), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_outbox_pending(plain, &n), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_ack(plain, 1), WS_ERR_INVALID_ARGUMENT);
  close_and_free(plain);

  printf("outbox: ok\n");
  return 0;
}
