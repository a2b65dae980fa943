/* RFC 6455 framing and handshake, without I/O. */
#ifndef SHOP_WEBSOCKET_H
#define SHOP_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SHOP_WS_CONTINUATION 0x0
#define SHOP_WS_TEXT         0x1
#define SHOP_WS_BINARY       0x2
#define SHOP_WS_CLOSE        0x8
#define SHOP_WS_PING         0x9
#define SHOP_WS_PONG         0xa

/* Close codes. */
#define SHOP_WS_CLOSE_NORMAL     1000
#define SHOP_WS_CLOSE_GOING_AWAY 1001
#define SHOP_WS_CLOSE_PROTOCOL   1002
#define SHOP_WS_CLOSE_TOO_BIG    1009

/* 1 when key is a valid Sec-WebSocket-Key (base64 of 16 bytes). */
int    shop_ws_key_ok(shop_str key);
/* Sec-WebSocket-Accept for key: 28 characters and a NUL. */
void   shop_ws_accept(shop_str key, char out[29]);

/* A server frame's header (FIN set, never masked); returns its length (<= 10). */
size_t shop_ws_header(unsigned char *out, int opcode, uint64_t len);
/* A whole close frame with a code (and no reason); returns its length (4). */
size_t shop_ws_close_frame(unsigned char *out, unsigned code);

typedef struct {
    int           fin;
    int           opcode;
    uint64_t      len;
    unsigned char mask[4];
    size_t        header_len;
} shop_ws_frame;

/* Parses a client frame header at buf[0..n). Returns 1 (frame filled), 0 (need
 * more bytes) or -1 (protocol violation: *close_code and *why say which).
 * Client frames must be masked; control frames must be final and <= 125
 * bytes; data frames may not exceed max_payload. */
int    shop_ws_parse(const unsigned char *buf, size_t n, uint64_t max_payload,
                     shop_ws_frame *f, unsigned *close_code, const char **why);
/* Unmasks payload bytes that start `offset` bytes into the frame's payload. */
void   shop_ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4], uint64_t offset);

#endif
