/* Keyset cursors: shop_cursor_decode() on arbitrary strings, with the
 * promise "one cursor, one spelling": whatever decodes, encodes back to
 * exactly the same text. And the other way: any key encodes to a cursor
 * that decodes to that key.
 *
 * Input: byte 0 is the kind ('p', 'o', or whatever it is), then the text. */
#include <string.h>

#include "cursor.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    uint8_t b = fz_byte(&in);
    char kind = b == 0 ? 'p' : b == 1 ? 'o' : (char) b;
    fz_mem m;
    shop_str key;

    fz_mem_init(&m);
    shop_str text = fz_copy(&m, fz_rest(&in));

    if (shop_cursor_decode(&m.arena, kind, text, &key) == 0) {
        FZ_ASSERT(key.p != NULL && key.p[key.n] == '\0', "key not NUL-terminated");
        shop_str again = shop_cursor_encode(&m.arena, kind, key);
        FZ_ASSERT(again.n == text.n && memcmp(again.p, text.p, text.n) == 0,
                  "cursor %.*s decodes, but encodes back as %.*s", (int) text.n, text.p,
                  (int) again.n, again.p);
    }

    /* The input as a key. */
    shop_str cur = shop_cursor_encode(&m.arena, kind, text);
    /* A cursor holds a key of 1 ... 158 bytes ("k:" + key is at most 160). */
    if (text.n >= 1 && text.n + 2 <= 160) {
        FZ_ASSERT(cur.n > 0, "a key of %zu bytes did not encode", text.n);
        shop_str back;
        FZ_ASSERT(shop_cursor_decode(&m.arena, kind, cur, &back) == 0, "own cursor refused: %.*s",
                  (int) cur.n, cur.p);
        FZ_ASSERT(back.n == text.n && (text.n == 0 || memcmp(back.p, text.p, text.n) == 0),
                  "round trip changed the key");
        char other = kind == 'p' ? 'o' : 'p';
        FZ_ASSERT(shop_cursor_decode(&m.arena, other, cur, &back) != 0, "a cursor of another kind decodes");
    }
    fz_mem_free(&m);
    return 0;
}
