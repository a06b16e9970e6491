/*
 * A real Tether SSE client (tether.h, sse_*) against the test kit's SSE
 * server (tether_testkit.h, wst_sse_*): a 503 with Retry-After then an
 * accept, events with types, ids and several lines, a reset stream that
 * the client reopens with Last-Event-ID, and a 204 that ends the client
 * for good. Exits 0 on success.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether.h"
#include "tether_testkit.h"

/* Upper bound on any single wait. */
#define WAIT_MS 20000

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      const char *ws_error = ws_last_error();                                             \
      const char *wst_error = wst_last_error();                                           \
      fprintf(stderr, "%s:%d: FAIL: %s (ws_last_error: %s, wst_last_error: %s)\n",        \
              __FILE__, __LINE__, #cond, ws_error ? ws_error : "-",                       \
              wst_error ? wst_error : "-");                                               \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

/* What poll_until saw on its way. */
typedef struct {
  int errors_with_code;
  int reconnecting;
} seen;

/*
 * Polls until an event of `kind` (for SSE_EVENT_MESSAGE: with `data`);
 * counts errors with code `error` and reconnects. The event is left in *ev.
 */
static void poll_until(sse_client *client, sse_event_kind kind, const char *data, int32_t error,
                       seen *s, sse_event *ev) {
  for (int i = 0; i < 10000; i++) {
    CHECK(sse_poll_event(client, WAIT_MS, ev) == WS_OK);
    if (ev->kind == SSE_EVENT_ERROR && ev->error == error && s) {
      s->errors_with_code++;
    }
    if (ev->kind == SSE_EVENT_RECONNECTING && s) {
      s->reconnecting++;
    }
    if (ev->kind == kind &&
        (data == NULL || (ev->len == strlen(data) && memcmp(ev->data, data, ev->len) == 0))) {
      return;
    }
  }
  CHECK(!"the event never came");
}

/* The next recorded request's Last-Event-ID equals `expected` (NULL: none). */
static void expect_last_event_id(wst_sse_server *server, const char *expected) {
  wst_request *request = NULL;
  CHECK(wst_sse_server_await_request(server, WAIT_MS, &request) == WST_OK);
  CHECK(strcmp(wst_request_path(request), "/feed") == 0);
  const char *accept = wst_request_header(request, "accept");
  CHECK(accept != NULL && strcmp(accept, "text/event-stream") == 0);
  const char *last = wst_request_header(request, "last-event-id");
  if (expected == NULL) {
    CHECK(last == NULL);
  } else {
    CHECK(last != NULL && strcmp(last, expected) == 0);
  }
  wst_request_free(request);
}

static void send_event(wst_sse_stream *stream, const char *type, const char *id,
                       const char *data) {
  CHECK(wst_sse_stream_send(stream, type, id, (const uint8_t *)data, strlen(data), -1) == WST_OK);
}

int main(void) {
  wst_sse_server *server = NULL;
  CHECK(wst_sse_server_start(&server) == WST_OK);
  uint16_t port = 0;
  CHECK(wst_sse_server_port(server, &port) == WST_OK && port != 0);
  CHECK(wst_sse_server_ca_pem(server) == NULL);

  /* Bad input is a status and a message, never a crash. */
  CHECK(wst_sse_server_push_reply(server, "{\"refuse\":{\"status\":200}}") ==
        WST_ERR_INVALID_ARGUMENT);
  CHECK(wst_last_error() != NULL);
  CHECK(wst_sse_server_push_reply(NULL, "\"reset\"") == WST_ERR_NULL_ARGUMENT);
  CHECK(wst_sse_server_push_reply(server, "\"explode\"") == WST_ERR_INVALID_ARGUMENT);
  CHECK(wst_sse_server_set_network(server, "{\"bandwidth_bytes_per_s\":0}") ==
        WST_ERR_INVALID_ARGUMENT);
  CHECK(wst_sse_stream_end(NULL) == WST_ERR_NULL_ARGUMENT);

  CHECK(wst_sse_server_push_reply(
            server, "{\"refuse\":{\"status\":503,\"headers\":{\"Retry-After\":\"1\"}}}") == WST_OK);

  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/feed", (unsigned)port);
  const char *options =
      "{\"connect_timeout_ms\":1000,\"read_timeout_ms\":5000,"
      "\"reconnect\":{\"initial_delay_ms\":10,\"max_delay_ms\":100,\"jitter\":0}}";
  sse_client *client = NULL;
  CHECK(sse_connect(url, options, &client) == WS_OK);

  sse_event ev;
  seen refused = {0, 0};
  poll_until(client, SSE_EVENT_OPEN, NULL, 503, &refused, &ev);
  CHECK(refused.errors_with_code == 1);
  expect_last_event_id(server, NULL); /* the 503 */
  expect_last_event_id(server, NULL); /* the accepted stream */

  /* Events with types, ids and two lines of data. */
  wst_sse_stream *first = NULL;
  CHECK(wst_sse_server_await_stream(server, WAIT_MS, &first) == WST_OK);
  CHECK(wst_sse_stream_is_open(first) == 1);
  CHECK(wst_sse_stream_send(first, NULL, "bad\nid", (const uint8_t *)"x", 1, -1) ==
        WST_ERR_INVALID_ARGUMENT);
  CHECK(wst_sse_stream_comment(first, "keep-alive") == WST_OK);
  send_event(first, "tick", "1", "one\ntwo");
  poll_until(client, SSE_EVENT_MESSAGE, "one\ntwo", 0, NULL, &ev);
  CHECK(strcmp(ev.type, "tick") == 0 && ev.id != NULL && strcmp(ev.id, "1") == 0);
  send_event(first, NULL, "2", "plain");
  poll_until(client, SSE_EVENT_MESSAGE, "plain", 0, NULL, &ev);
  CHECK(strcmp(ev.type, "message") == 0 && strcmp(ev.id, "2") == 0);

  /* A drop (RST): the client reopens with the last id it saw. */
  CHECK(wst_sse_stream_reset(first) == WST_OK);
  wst_sse_stream *second = NULL;
  CHECK(wst_sse_server_await_stream(server, WAIT_MS, &second) == WST_OK);
  CHECK(wst_sse_stream_id(second) != wst_sse_stream_id(first));
  CHECK(wst_sse_stream_is_open(first) == 0);
  CHECK(wst_sse_stream_end(first) == WST_ERR_CLOSED);
  expect_last_event_id(server, "2");
  send_event(second, NULL, "3", "after the drop");
  poll_until(client, SSE_EVENT_MESSAGE, "after the drop", 0, NULL, &ev);
  CHECK(strcmp(ev.id, "3") == 0);

  /* A clean end, then 204: the client ends for good, without a retry. */
  CHECK(wst_sse_server_push_reply(server, "{\"refuse\":{\"status\":204}}") == WST_OK);
  CHECK(wst_sse_stream_end(second) == WST_OK);
  seen ending = {0, 0};
  poll_until(client, SSE_EVENT_TERMINATED, NULL, 0, &ending, &ev);
  CHECK(ending.reconnecting == 1); /* after the end; none after the 204 */
  expect_last_event_id(server, "3");
  CHECK(sse_poll_event(client, 0, &ev) == WS_ERR_CLOSED);

  /* Nothing more within a short wait is a timeout, not an error. */
  wst_sse_stream *none = NULL;
  CHECK(wst_sse_server_await_stream(server, 10, &none) == WST_TIMEOUT && none == NULL);

  sse_free(client);
  wst_sse_stream_free(first);
  wst_sse_stream_free(second);
  wst_sse_server_free(server);
  printf("sse_client_against_kit: ok\n");
  return 0;
}
