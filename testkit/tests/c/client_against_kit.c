/*
 * A real Tether client (tether.h, ws_*) against the test kit's server
 * (tether_testkit.h, wst_*): a 503 with Retry-After then an accept, the
 * recorded handshake headers, an echo, and a black hole that the client's
 * heartbeat declares dead before it reconnects. Exits 0 on success.
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

/* Polls until an event of `kind`; counts the errors with code `error`. */
static void poll_until(ws_client *client, ws_event_kind kind, int32_t error, int *errors_seen) {
  for (int i = 0; i < 10000; i++) {
    ws_event ev;
    ws_status s = ws_poll_event(client, WAIT_MS, &ev);
    CHECK(s == WS_OK);
    if (ev.kind == WS_EVENT_ERROR && ev.error == error && errors_seen) {
      (*errors_seen)++;
    }
    if (ev.kind == kind) {
      return;
    }
  }
  CHECK(!"the event never came");
}

int main(void) {
  wst_server *server = NULL;
  CHECK(wst_server_start(&server) == WST_OK);
  uint16_t port = 0;
  CHECK(wst_server_port(server, &port) == WST_OK && port != 0);
  CHECK(wst_server_ca_pem(server) == NULL && wst_server_pin_sha256(server) == NULL);

  /* Bad input is a status and a message, never a crash. */
  CHECK(wst_server_push_reply(server, "{\"refuse\":{\"status\":101}}") == WST_ERR_INVALID_ARGUMENT);
  CHECK(wst_last_error() != NULL);
  CHECK(wst_server_push_reply(NULL, "\"reset\"") == WST_ERR_NULL_ARGUMENT);

  CHECK(wst_server_push_reply(server,
        "{\"refuse\":{\"status\":503,\"headers\":{\"Retry-After\":\"1\"}}}") == WST_OK);
  CHECK(wst_server_push_reply(server, "{\"accept\":{\"subprotocol\":\"feed.v1\"}}") == WST_OK);

  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/feed", (unsigned)port);
  /* Every timer short, as an app's tests would set them. */
  const char *options =
      "{\"headers\":{\"X-App\":\"c-test\"},\"subprotocols\":[\"feed.v1\"],"
      "\"ping_interval_ms\":100,\"pong_timeout_ms\":300,\"connect_timeout_ms\":1000,"
      "\"close_timeout_ms\":500,"
      "\"reconnect\":{\"initial_delay_ms\":10,\"max_delay_ms\":100,\"jitter\":0}}";
  ws_client *client = NULL;
  CHECK(ws_connect(url, options, &client) == WS_OK);

  int refused = 0;
  poll_until(client, WS_EVENT_OPEN, 503, &refused);
  CHECK(refused == 1);

  /* Both handshakes were recorded, headers and path. */
  for (int i = 0; i < 2; i++) {
    wst_request *request = NULL;
    CHECK(wst_server_await_request(server, WAIT_MS, &request) == WST_OK);
    CHECK(strcmp(wst_request_path(request), "/feed") == 0);
    const char *app = wst_request_header(request, "x-app");
    CHECK(app != NULL && strcmp(app, "c-test") == 0);
    CHECK(wst_request_header(request, "x-absent") == NULL);
    wst_request_free(request);
  }

  wst_connection *first = NULL;
  CHECK(wst_server_await_connection(server, WAIT_MS, &first) == WST_OK);

  CHECK(ws_send(client, WS_TEXT, (const uint8_t *)"hi", 2) == WS_OK);
  wst_message *message = NULL;
  CHECK(wst_server_await_message(server, WAIT_MS, &message) == WST_OK);
  size_t len = 0;
  const uint8_t *data = wst_message_data(message, &len);
  CHECK(wst_message_get_kind(message) == WST_TEXT && len == 2 && memcmp(data, "hi", 2) == 0);
  CHECK(wst_message_connection(message) == wst_connection_id(first));
  wst_message_free(message);
  poll_until(client, WS_EVENT_TEXT, 0, NULL);

  /* A black hole: only the heartbeat can tell; then a new connection. */
  CHECK(wst_connection_set_faults(first, "{\"black_hole\":true}") == WST_OK);
  int dead = 0;
  poll_until(client, WS_EVENT_OPEN, WS_ERROR_HEARTBEAT_TIMEOUT, &dead);
  CHECK(dead == 1);
  wst_connection *second = NULL;
  CHECK(wst_server_await_connection(server, WAIT_MS, &second) == WST_OK);
  CHECK(wst_connection_id(second) != wst_connection_id(first));
  wst_request *third = NULL;
  CHECK(wst_server_await_request(server, WAIT_MS, &third) == WST_OK);
  CHECK(strcmp(wst_request_header(third, "x-app"), "c-test") == 0);
  wst_request_free(third);

  /* Nothing more within a short wait is a timeout, not an error. */
  CHECK(wst_server_await_message(server, 10, &message) == WST_TIMEOUT);

  CHECK(ws_close(client, 1000, NULL) == WS_OK);
  poll_until(client, WS_EVENT_TERMINATED, 0, NULL);
  ws_free(client);
  wst_connection_free(first);
  wst_connection_free(second);
  wst_server_free(server);
  printf("client_against_kit: ok\n");
  return 0;
}
