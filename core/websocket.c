#include "websocket.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int
shop_ws_key_ok(shop_str key)
{
    unsigned char raw[18];

    key = shop_str_trim(key);
    if (key.n != 24 || key.p[22] != '=' || key.p[23] != '=') {
        return 0;
    }
    return EVP_DecodeBlock(raw, (const unsigned char *) key.p, 24) == 18;
}

void
shop_ws_accept(shop_str key, char out[29])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    unsigned char text[24 + sizeof(ws_guid)];

    key = shop_str_trim(key);
    if (key.n > 24) {
        key.n = 24;
    }
    memcpy(text, key.p, key.n);
    memcpy(text + key.n, ws_guid, sizeof(ws_guid) - 1);
    SHA1(text, key.n + sizeof(ws_guid) - 1, digest);
    EVP_EncodeBlock((unsigned char *) out, digest, SHA_DIGEST_LENGTH);
    out[28] = '\0';
}

size_t
shop_ws_header(unsigned char *out, int opcode, uint64_t len)
{
    out[0] = (unsigned char) (0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (unsigned char) len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char) (len >> 8);
        out[3] = (unsigned char) len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (unsigned char) (len >> (56 - 8 * i));
    }
    return 10;
}

size_t
shop_ws_close_frame(unsigned char *out, unsigned code)
{
    size_t hl = shop_ws_header(out, SHOP_WS_CLOSE, 2);
    out[hl] = (unsigned char) (code >> 8);
    out[hl + 1] = (unsigned char) code;
    return hl + 2;
}

int
shop_ws_parse(const unsigned char *buf, size_t n, uint64_t max_payload, shop_ws_frame *f,
              unsigned *close_code, const char **why)
{
    if (n < 2) {
        return 0;
    }
    f->fin = buf[0] >> 7;
    f->opcode = buf[0] & 0x0f;
    if (buf[0] & 0x70) {
        *close_code = SHOP_WS_CLOSE_PROTOCOL;
        *why = "reserved bits set";
        return -1;
    }
    switch (f->opcode) {
    case SHOP_WS_CONTINUATION:
    case SHOP_WS_TEXT:
    case SHOP_WS_BINARY:
    case SHOP_WS_CLOSE:
    case SHOP_WS_PING:
    case SHOP_WS_PONG:
        break;
    default:
        *close_code = SHOP_WS_CLOSE_PROTOCOL;
        *why = "unknown opcode";
        return -1;
    }
    if (!(buf[1] & 0x80)) {
        *close_code = SHOP_WS_CLOSE_PROTOCOL;
        *why = "client frames must be masked";
        return -1;
    }
    uint64_t len = buf[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
        if (n < 4) {
            return 0;
        }
        len = (uint64_t) buf[2] << 8 | buf[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10) {
            return 0;
        }
        if (buf[2] & 0x80) {
            *close_code = SHOP_WS_CLOSE_PROTOCOL;
            *why = "the most significant bit of a 64-bit length must be 0";
            return -1;
        }
        len = 0;
        for (int i = 0; i < 8; i++) {
            len = len << 8 | buf[2 + i];
        }
        hl = 10;
    }
    if (f->opcode >= SHOP_WS_CLOSE && (!f->fin || len > 125)) {
        *close_code = SHOP_WS_CLOSE_PROTOCOL;
        *why = "control frames must be final and at most 125 bytes";
        return -1;
    }
    if (len > max_payload) {
        *close_code = SHOP_WS_CLOSE_TOO_BIG;
        *why = "frame too large";
        return -1;
    }
    if (n < hl + 4) {
        return 0;
    }
    memcpy(f->mask, buf + hl, 4);
    f->len = len;
    f->header_len = hl + 4;
    return 1;
}

void
shop_ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++) {
        p[i] ^= mask[(offset + i) & 3];
    }
}
