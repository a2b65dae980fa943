/* RFC 6455 framing without I/O (websocket.c): parsing client frame headers
 * (masking, reserved bits, opcodes, control frames, lengths, size limit,
 * partial input), unmasking in pieces, server headers, close frames, and
 * the handshake's key check and accept value. */
#include "helpers.h"

#include <string.h>

#include "websocket.h"

#define MAX 65536

/* RFC 6455 5.7: a single-frame masked text message "Hello". */
static const unsigned char hello[] = {
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
};

static int
parse(const unsigned char *buf, size_t n, uint64_t max, shop_ws_frame *f, unsigned *code)
{
    const char *why = NULL;
    int rc;

    memset(f, 0xaa, sizeof(*f));
    *code = 0;
    rc = shop_ws_parse(buf, n, max, f, code, &why);
    if (rc < 0) {
        assert_non_null(why);
    } else {
        assert_int_equal(*code, 0);
    }
    return rc;
}

static void
test_parse_hello(void **state)
{
    shop_ws_frame f;
    unsigned code;
    unsigned char payload[5];
    (void) state;

    assert_int_equal(parse(hello, sizeof(hello), MAX, &f, &code), 1);
    assert_int_equal(f.fin, 1);
    assert_int_equal(f.opcode, SHOP_WS_TEXT);
    assert_int_equal(f.len, 5);
    assert_int_equal(f.header_len, 6);
    assert_memory_equal(f.mask, "\x37\xfa\x21\x3d", 4);
    memcpy(payload, hello + f.header_len, 5);
    shop_ws_unmask(payload, 5, f.mask, 0);
    assert_memory_equal(payload, "Hello", 5);
    /* More bytes than the frame (the next frame's start) change nothing. */
    unsigned char two[sizeof(hello) * 2];
    memcpy(two, hello, sizeof(hello));
    memcpy(two + sizeof(hello), hello, sizeof(hello));
    assert_int_equal(parse(two, sizeof(two), MAX, &f, &code), 1);
    assert_int_equal(f.len, 5);
    assert_int_equal(f.header_len, 6);
}

static void
test_parse_unmasked(void **state)
{
    shop_ws_frame f;
    unsigned code;
    (void) state;

    /* RFC 6455 5.7: the same message unmasked, as a server would send it. */
    static const unsigned char unmasked[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    assert_int_equal(parse(unmasked, sizeof(unmasked), MAX, &f, &code), -1);
    assert_int_equal(code, SHOP_WS_CLOSE_PROTOCOL);
    static const unsigned char ping[] = { 0x89, 0x00 };
    assert_int_equal(parse(ping, sizeof(ping), MAX, &f, &code), -1);
    assert_int_equal(code, SHOP_WS_CLOSE_PROTOCOL);
    static const unsigned char big[] = { 0x82, 0x7e, 0x01, 0x00 };
    assert_int_equal(parse(big, sizeof(big), MAX, &f, &code), -1);
    assert_int_equal(code, SHOP_WS_CLOSE_PROTOCOL);
}

static void
test_parse_reserved_bits(void **state)
{
    shop_ws_frame f;
    unsigned code;
    (void) state;

    for (unsigned rsv = 1; rsv < 8; rsv++) {
        unsigned char frame[sizeof(hello)];
        memcpy(frame, hello, sizeof(hello));
        frame[0] = (unsigned char) (0x81 | rsv << 4);
        assert_int_equal(parse(frame, sizeof(frame), MAX, &f, &code), -1);
        assert_int_equal(code, SHOP_WS_CLOSE_PROTOCOL);
    }
}

static void
test_parse_opcodes(void **state)
{
    shop_ws_frame f;
    unsigned code;
    (void) state;

    for (unsigned op = 0; op < 16; op++) {
        unsigned char frame[] = { (unsigned char) (0x80 | op), 0x80, 1, 2, 3, 4 };
        int known = op == 0x0 || op == 0x1 || op == 0x2 || op == 0x8 || op == 0x9 || op == 0xa;
        int rc = parse(frame, sizeof(frame), MAX, &f, &code);
        if (known) {
            assert_int_equal(rc, 1);
            assert_int_equal(f.opcode, (int) op);
            assert_int_equal(f.len, 0);
            assert_int_equal(f.header_len, 6);
        } else {
            if (rc != -1) {
                print_error("opcode 0x%x accepted\n", op);
                fail();
            }
            assert_int_equal(code, SHOP_WS_CLOSE_PROTOCOL);
        }
    }
}

static void
test_parse_control_frames(void **state)
{
    shop_ws_frame f;
    unsigned code;
    (void) state;

    static const unsigned char ops[] = { SHOP_WS_CLOSE, SHOP_WS_PING, SHOP_WS_PONG };
    for (size_t i = 0; i < sizeof(ops); i++) {
        /* 125 bytes: fine. */
        unsigned char ok[] = { (unsigned char) (0x80 | ops[i]), 0x80 | 125, 1, 2, 3, 4 };
        assert_int_equal(parse(ok, sizeof(ok), MAX, &f, &code), 1);
        assert_int_equal(f.len, 125);
        assert_int_equal(f.fin, 1);
        /* 126 in the 16-bit form: too long for a control frame. */
        unsigned char l126[] = { (unsigned char) (0x80 | ops[i]), 0x80 | 126, 0, 126, 1, 2, 3, 4 };
        assert_int_equal(parse(l126, sizeof(l126), MAX, &f, &code), -1);
        assert_int_equal(code, SHOP_WS_CLOSE_PROTOCOL);
        /* 125 bytes, in the 16-bit form: small enough. */
        unsigned char l125[] = { (unsigned char) (0x80 | ops[i]), 0x80 | 126, 0, 125, 1, 2, 3, 4 };
        assert_int_equal(parse(l125, sizeof(l125), MAX, &f, &code), 1);
        assert_int_equal(f.len, 125);
        /* A 64-bit length. */
        unsigned char l64[] = { (unsigned char) (0x80 | ops[i]), 0x80 | 127, 0, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3, 4 };
        assert_int_equal(parse(l64, sizeof(l64), MAX, &f, &code), -1);
        assert_int_equal(code, SHOP_WS_CLOSE_PROTOCOL);
        /* Not final: control frames may not be fragmented. */
        unsigned char frag[] = { ops[i], 0x80, 1, 2, 3, 4 };
        assert_int_equal(parse(frag, sizeof(frag), MAX, &f, &code), -1);
        assert_int_equal(code, SHOP_WS_CLOSE_PROTOCOL);
        /* Even with a tiny limit, a control frame of 125 is a protocol matter, not a size one. */
        unsigned char l126b[] = { (unsigned char) (0x80 | ops[i]), 0x80 | 126, 0, 200, 1, 2, 3, 4 };
        assert_int_equal(parse(l126b, sizeof(l126b), 10, &f, &code), -1);
        assert_int_equal(code, SHOP_WS_CLOSE_PROTOCOL);
    }
    /* Data frames may be fragments. */
    unsigned char text_frag[] = { SHOP_WS_TEXT, 0x80 | 3, 1, 2, 3, 4 };
    assert_int_equal(parse(text_frag, sizeof(text_frag), MAX, &f, &code), 1);
    assert_int_equal(f.fin, 0);
    unsigned char cont[] = { 0x80 | SHOP_WS_CONTINUATION, 0x80 | 3, 1, 2, 3, 4 };
    assert_int_equal(parse(cont, sizeof(cont), MAX, &f, &code), 1);
    assert_int_equal(f.fin, 1);
    assert_int_equal(f.opcode, SHOP_WS_CONTINUATION);
}

static void
test_parse_lengths(void **state)
{
    shop_ws_frame f;
    unsigned code;
    (void) state;

    /* 7-bit: up to 125. */
    unsigned char l0[] = { 0x82, 0x80, 9, 8, 7, 6 };
    assert_int_equal(parse(l0, sizeof(l0), MAX, &f, &code), 1);
    assert_int_equal(f.len, 0);
    assert_int_equal(f.header_len, 6);
    assert_memory_equal(f.mask, "\x09\x08\x07\x06", 4);
    /* 16-bit. */
    unsigned char l256[] = { 0x82, 0xfe, 0x01, 0x00, 9, 8, 7, 6 };
    assert_int_equal(parse(l256, sizeof(l256), MAX, &f, &code), 1);
    assert_int_equal(f.len, 256);
    assert_int_equal(f.header_len, 8);
    assert_memory_equal(f.mask, "\x09\x08\x07\x06", 4);
    unsigned char l65535[] = { 0x82, 0xfe, 0xff, 0xff, 9, 8, 7, 6 };
    assert_int_equal(parse(l65535, sizeof(l65535), MAX, &f, &code), 1);
    assert_int_equal(f.len, 65535);
    /* 64-bit. */
    unsigned char l65536[] = { 0x82, 0xff, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 9, 8, 7, 6 };
    assert_int_equal(parse(l65536, sizeof(l65536), MAX, &f, &code), 1);
    assert_int_equal(f.len, 65536);
    assert_int_equal(f.header_len, 14);
    assert_memory_equal(f.mask, "\x09\x08\x07\x06", 4);
    unsigned char lbig[] = { 0x82, 0xff, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 9, 8, 7, 6 };
    assert_int_equal(parse(lbig, sizeof(lbig), UINT64_MAX, &f, &code), 1);
    assert_int_equal(f.len, 0x010203040506ULL);
}

static void
test_parse_too_big(void **state)
{
    shop_ws_frame f;
    unsigned code;
    (void) state;

    unsigned char at[] = { 0x81, 0xfe, 0x03, 0xe8, 1, 2, 3, 4 };      /* 1000 */
    assert_int_equal(parse(at, sizeof(at), 1000, &f, &code), 1);
    unsigned char over[] = { 0x81, 0xfe, 0x03, 0xe9, 1, 2, 3, 4 };    /* 1001 */
    assert_int_equal(parse(over, sizeof(over), 1000, &f, &code), -1);
    assert_int_equal(code, SHOP_WS_CLOSE_TOO_BIG);
    unsigned char small_over[] = { 0x81, 0x80 | 11, 1, 2, 3, 4 };
    assert_int_equal(parse(small_over, sizeof(small_over), 10, &f, &code), -1);
    assert_int_equal(code, SHOP_WS_CLOSE_TOO_BIG);
    unsigned char huge[] = { 0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4 };
    assert_int_equal(parse(huge, sizeof(huge), MAX, &f, &code), -1);
    assert_int_equal(code, SHOP_WS_CLOSE_TOO_BIG);
    /* Too big is known from the length alone: no need to wait for the mask. */
    assert_int_equal(parse(over, 4, 1000, &f, &code), -1);
    assert_int_equal(code, SHOP_WS_CLOSE_TOO_BIG);
}

/* Every prefix of a valid frame header needs more bytes; the whole header parses. */
static void
check_splits(const unsigned char *frame, size_t header_len, uint64_t len)
{
    shop_ws_frame f;
    unsigned code;

    for (size_t n = 0; n < header_len; n++) {
        int rc = parse(frame, n, MAX, &f, &code);
        if (rc != 0) {
            print_error("prefix of %zu bytes (header %zu): %d\n", n, header_len, rc);
            fail();
        }
    }
    assert_int_equal(parse(frame, header_len, MAX, &f, &code), 1);
    assert_int_equal(f.header_len, header_len);
    assert_int_equal(f.len, len);
}

static void
test_parse_need_more(void **state)
{
    (void) state;
    check_splits(hello, 6, 5);
    static const unsigned char f16[] = { 0x81, 0xfe, 0x01, 0x00, 9, 8, 7, 6 };
    check_splits(f16, 8, 256);
    static const unsigned char f64[] = { 0x82, 0xff, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 9, 8, 7, 6 };
    check_splits(f64, 14, 65536);
    static const unsigned char close[] = { 0x88, 0x82, 1, 2, 3, 4 };
    check_splits(close, 6, 2);
    /* With no bytes at all there is nothing to judge. */
    shop_ws_frame f;
    unsigned code;
    assert_int_equal(parse(NULL, 0, MAX, &f, &code), 0);
}

static void
test_unmask_offsets(void **state)
{
    static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    unsigned char plain[300], whole[300], pieces[300];
    (void) state;

    for (size_t i = 0; i < sizeof(plain); i++) {
        plain[i] = (unsigned char) (i * 7 + 3);
        whole[i] = (unsigned char) (plain[i] ^ mask[i % 4]);
    }
    memcpy(pieces, whole, sizeof(whole));
    shop_ws_unmask(whole, sizeof(whole), mask, 0);
    assert_memory_equal(whole, plain, sizeof(plain));

    /* The same payload read in pieces of 1, 2, 3, 5, 7, ... bytes. */
    size_t off = 0, step = 1;
    while (off < sizeof(pieces)) {
        size_t n = step < sizeof(pieces) - off ? step : sizeof(pieces) - off;
        shop_ws_unmask(pieces + off, n, mask, off);
        off += n;
        step += step < 3 ? 1 : 2;
    }
    assert_memory_equal(pieces, plain, sizeof(plain));

    /* Offsets past 4 GiB keep the phase. */
    unsigned char b[4] = { 0, 0, 0, 0 };
    shop_ws_unmask(b, 4, mask, (uint64_t) 1 << 32 | 2);
    assert_memory_equal(b, "\x21\x3d\x37\xfa", 4);
    /* Nothing to do. */
    shop_ws_unmask(b, 0, mask, 0);
    assert_memory_equal(b, "\x21\x3d\x37\xfa", 4);

    /* RFC 6455 "Hello" unmasked in two pieces. */
    unsigned char h[5];
    memcpy(h, hello + 6, 5);
    shop_ws_unmask(h, 2, hello + 2, 0);
    shop_ws_unmask(h + 2, 3, hello + 2, 2);
    assert_memory_equal(h, "Hello", 5);
}

static void
test_server_header(void **state)
{
    unsigned char h[10];
    (void) state;

    assert_int_equal(shop_ws_header(h, SHOP_WS_TEXT, 0), 2);
    assert_memory_equal(h, "\x81\x00", 2);
    assert_int_equal(shop_ws_header(h, SHOP_WS_TEXT, 125), 2);
    assert_memory_equal(h, "\x81\x7d", 2);
    assert_int_equal(shop_ws_header(h, SHOP_WS_TEXT, 126), 4);
    assert_memory_equal(h, "\x81\x7e\x00\x7e", 4);
    assert_int_equal(shop_ws_header(h, SHOP_WS_BINARY, 65535), 4);
    assert_memory_equal(h, "\x82\x7e\xff\xff", 4);
    assert_int_equal(shop_ws_header(h, SHOP_WS_TEXT, 65536), 10);
    assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(shop_ws_header(h, SHOP_WS_PONG, 5), 2);
    assert_memory_equal(h, "\x8a\x05", 2);
    assert_int_equal(shop_ws_header(h, SHOP_WS_PING, 0), 2);
    assert_memory_equal(h, "\x89\x00", 2);
}

static void
test_close_frame(void **state)
{
    unsigned char out[16];
    (void) state;

    memset(out, 0xee, sizeof(out));
    assert_int_equal(shop_ws_close_frame(out, SHOP_WS_CLOSE_NORMAL), 4);
    assert_memory_equal(out, "\x88\x02\x03\xe8", 4);
    assert_int_equal(out[4], 0xee);
    assert_int_equal(shop_ws_close_frame(out, SHOP_WS_CLOSE_GOING_AWAY), 4);
    assert_memory_equal(out, "\x88\x02\x03\xe9", 4);
    assert_int_equal(shop_ws_close_frame(out, SHOP_WS_CLOSE_PROTOCOL), 4);
    assert_memory_equal(out, "\x88\x02\x03\xea", 4);
    assert_int_equal(shop_ws_close_frame(out, SHOP_WS_CLOSE_TOO_BIG), 4);
    assert_memory_equal(out, "\x88\x02\x03\xf1", 4);
}

static void
test_handshake_key(void **state)
{
    char accept[29];
    (void) state;

    assert_true(shop_ws_key_ok(shop_cstr("dGhlIHNhbXBsZSBub25jZQ==")));
    assert_true(shop_ws_key_ok(shop_cstr(" dGhlIHNhbXBsZSBub25jZQ== ")));
    assert_true(shop_ws_key_ok(shop_cstr("AAAAAAAAAAAAAAAAAAAAAA==")));
    assert_true(shop_ws_key_ok(shop_cstr("/+/+/+/+/+/+/+/+/+/+/w==")));
    assert_false(shop_ws_key_ok(shop_cstr("")));
    assert_false(shop_ws_key_ok(shop_cstr("dGhlIHNhbXBsZSBub25jZQ=")));
    assert_false(shop_ws_key_ok(shop_cstr("dGhlIHNhbXBsZSBub25jZSE=")));       /* 17 bytes */
    assert_false(shop_ws_key_ok(shop_cstr("dGhlIHNhbXBsZSBub25jZSEh")));       /* 18 bytes */
    assert_false(shop_ws_key_ok(shop_cstr("dGhlIHNhbXBsZSBub25j!Q==")));
    assert_false(shop_ws_key_ok(shop_cstr("dGhlIHNhbXBsZSBub25jZQ==AAAA")));
    assert_false(shop_ws_key_ok(shop_cstr("-_-_-_-_-_-_-_-_-_-_-w==")));       /* base64url */

    shop_ws_accept(shop_cstr("dGhlIHNhbXBsZSBub25jZQ=="), accept);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    shop_ws_accept(shop_cstr("  dGhlIHNhbXBsZSBub25jZQ==\t"), accept);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* RFC 6455 5.2: a 64-bit length with its top bit set is a protocol error
 * (1002), whatever the size limit. */
static void
test_parse_length_top_bit(void **state)
{
    static const unsigned char frame[] = {
        0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4
    };
    shop_ws_frame f;
    unsigned code = 0;
    const char *why = NULL;

    (void) state;
    assert_int_equal(shop_ws_parse(frame, sizeof(frame), UINT64_MAX, &f, &code, &why), -1);
    assert_int_equal(code, SHOP_WS_CLOSE_PROTOCOL);
    assert_non_null(why);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_parse_hello),
        TH_TEST(test_parse_unmasked),
        TH_TEST(test_parse_reserved_bits),
        TH_TEST(test_parse_opcodes),
        TH_TEST(test_parse_control_frames),
        TH_TEST(test_parse_lengths),
        TH_TEST(test_parse_too_big),
        TH_TEST(test_parse_length_top_bit),
        TH_TEST(test_parse_need_more),
        TH_TEST(test_unmask_offsets),
        TH_TEST(test_server_header),
        TH_TEST(test_close_frame),
        TH_TEST(test_handshake_key),
    };
    return cmocka_run_group_tests_name("websocket", tests, NULL, NULL);
}
