#!/usr/bin/env python3
"""The shop's HTTP suite: API.md's Products, health, conventions and auth
rules as data, run against every front-end given with --target, as TAP.

    suite.py --target fcgi=http://127.0.0.1:8081 [--target module=URL ...]
             --token-file var/admin.token [--body-limit 65536]
             [--webhook-secret-file var/webhook.secret]
             [--phase main|outage-down|outage-up]

Python 3 standard library only; the machinery (TAP, HTTP, psql, the case
runner and the convention checks) is in shoptest.py. The database checks (the bad-input table
must change nothing; list walks compared with the table) use psql with the
usual PGHOST/PGPORT/PGUSER/PGDATABASE environment; without PGHOST they are
skipped. tests/http/harness.sh runs this under `make check`.

Sections of --phase main, each run against every target in turn:
  MAIN        the case table: each case is a dict (request + expectations +
              captures such as "save the new id for later cases")
  WALKS       keyset pagination walked to the end, compared with the table
  BAD         the bad-input table: each case must be the right 4xx
              problem+json, leak nothing, and leave the database unchanged
  AFTER       deletes (they need what BAD refers to still present)
  CONCURRENT  races: one sku, one If-Match, one derived slug
  ORDERS      orders.py: warehouses, stock levels, orders, the state
              machine, the payment webhook (sections in its docstring)
  HOSTILE     hostile.py: the hostile-input table (issue 8): SQL injection,
              numbers, shapes, lengths, encodings, depth bombs, sizes,
              CR/LF, traversal, long lines, cursors, Last-Event-ID,
              WebSocket handshakes and frames (the module only); every
              shop.* table unchanged; both front-ends healthy after
  PARITY      (two or more targets) first every case above, compared
              across the targets (status, header names, Content-Type, ETag
              presence, Allow, WWW-Authenticate, Location, Retry-After, the
              problem type and the whole masked body of every error; one
              'not ok' per differing case); then the same requests
              everywhere, status, headers and masked bodies (success bodies
              too) equal (then orders.py's parity table)

Every response is also checked against the conventions: exactly one
X-Request-Id; application/json; charset=utf-8 on success bodies;
application/problem+json with type/title/status/detail (status equal to the
HTTP status, errors as {"field","message"}) and no internals on errors;
WWW-Authenticate on 401, Allow on 405, Retry-After on 503; timestamps
^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$; products with exactly
the API's fields and an ETag "<version>" on single-product responses.

Where API.md is silent, these cases expect what a careful user of an
RFC 9110 API expects:
  - HEAD works wherever GET does (same status and headers, no body).
  - 405 lists the allowed methods in Allow (checked as a superset: GET,
    PATCH, DELETE for /products/{id}; GET, POST for /products; GET for
    /healthz and /readyz). A wrong method is 405 even without credentials.
  - Authentication comes before validation: an unauthenticated POST with a
    broken body is 401, not 400. The scheme name is case-insensitive
    (`bearer TOKEN` works); `Basic ...` and a missing header are 401.
  - If-None-Match uses the weak comparison (W/"1" matches "1"), accepts a
    list and `*`; If-Match the strong one (W/"1" never matches) and `*`.
  - An id in the path is compared after percent-decoding
    (/products/product%2D1 is /products/product-1); a NUL or invalid UTF-8
    in it is simply an unknown id (404).
  - `application/json; charset=UTF-8` (any case, with or without the
    space) is JSON; PATCH also takes `application/merge-patch+json`
    (RFC 7396); a chunked request body is read like a sized one.
  - The slug derived from a name is the name lower-cased with each run of
    other characters turned into one '-', trimmed ("Red tee, M" ->
    "red-tee-m"); a taken derived slug gets a suffix (derived from the
    same base) instead of a 409, also when two such requests race.
  - Non-final list pages are full (exactly `limit` items); a cursor stays
    valid after the product it points after is deleted.
  - A JSON body that is not an object is 422 (valid JSON, wrong shape);
    invalid JSON (including NaN, a lone surrogate escape, leading zeros,
    depth 33) is 400. Nesting of 32 parses and fails validation.
  - `id`, `version`, `created_at`, `sku` (in PATCH) are not writable: 422.
  - A new X-Request-Id differs per request; the client's is kept only when
    it is 1-128 of A-Z a-z 0-9 . _ : - (abc-123, a UUID).
  - When the database is down: /healthz stays 200, /readyz and data
    requests answer 503 `unavailable` with Retry-After within 3 s; after
    it is back, readiness returns within 20 s and every following request
    succeeds (no failed request per stale pooled connection).
"""

import argparse
import json
import random
import string
import sys
import time
import urllib.parse

from shoptest import (DROP, NO_CT, Ctx, Db, Resp, Tap, Target, convention_errors, encode_body, get,
                      parallel, problem, run_case, run_case_parity, run_parity, run_table, send, status, subst,
                      tally)
import hostile
import orders


# ---------------------------------------------------------------- the cases

def pbody(**over):
    """A valid product body, with fields replaced (or left out with DROP)."""
    b = {'sku': '{{P}}-bad', 'name': 'Bad {{P}}', 'price_cents': 100, 'currency': 'EUR'}
    b.update(over)
    return {k: v for k, v in b.items() if v is not DROP}


def post(name, body, **kw):
    kw.setdefault('auth', True)
    return dict(name=name, method='POST', path='/products', body=body, **kw)


def patch(name, pid, body, **kw):
    kw.setdefault('auth', True)
    return dict(name=name, method='PATCH', path='/products/' + pid, body=body, **kw)


def v422(name, body, fields, method='POST', path='/products'):
    return dict(name=name, method=method, path=path, auth=True, body=body,
                expect=problem(422, 'validation', fields=fields))


def b400(name, body, **kw):
    return dict(name=name, method='POST', path='/products', auth=True, body=body,
                expect=problem(400, 'bad-request'), **kw)


def check_rid_replaced(sent):
    def check(r, ctx):
        got = r.h('X-Request-Id')
        return ['the unsafe X-Request-Id %r was echoed' % sent] if got == sent else []
    return check


def check_fresh_ids(r, ctx):
    other = send(ctx.tg, 'GET', '/healthz')
    a, b = r.h('X-Request-Id'), other.h('X-Request-Id')
    return ['two requests got the same new X-Request-Id %r' % a] if a == b else []


def check_slug_c(r, ctx):
    s, b = r.json.get('slug'), ctx.vars.get('slug_b', '')
    if s == b or not s.startswith(b):
        return ['slug %r: expected a new slug derived from %r (e.g. %s-2)' % (s, b, b)]
    return []


def check_list_page(n_expected=None, min_items=None):
    def check(r, ctx):
        items = r.json.get('items', [])
        errs = []
        if n_expected is not None and len(items) != n_expected:
            errs.append('%d items, expected %d' % (len(items), n_expected))
        if min_items is not None and len(items) < min_items:
            errs.append('%d items, expected at least %d' % (len(items), min_items))
        return errs
    return check


def check_limit_500(r, ctx):
    items = r.json.get('items', [])
    if ctx.db is None:
        return [] if 200 <= len(items) <= 500 else ['%d items' % len(items)]
    total = len(ctx.db.ids('true'))
    want = min(500, total)
    errs = ['%d items, expected %d (of %d products)' % (len(items), want, total)] if len(items) != want else []
    if total <= 500 and r.json.get('next') is not None:
        errs.append('next %r on the only page' % r.json.get('next'))
    return errs


def check_second_page(r, ctx):
    items = r.json.get('items', [])
    if len(items) != 1:
        return ['%d items, expected 1' % len(items)]
    if str(items[0].get('id')) == ctx.vars.get('first_id'):
        return ['the second page repeats the first item']
    return []


def check_version_kept(r, ctx):
    want = ctx.vars.get('ver_p')
    return [] if str(r.json.get('version')) == want else \
        ['version %r changed by an empty patch (was %s)' % (r.json.get('version'), want)]


def deep(n, inner='1'):
    return '[' * n + inner + ']' * n


def long_slug(n):
    return '{{P}}-' + 'a' * (n - 9)      # {{P}} is 8 characters


MAIN = [
    # ---- health
    get('liveness, no database touched', '/healthz', expect=status(200, json={'status': 'ok'})),
    get('readiness', '/readyz', expect=status(200, json={'status': 'ready'})),
    dict(name='HEAD is GET without a body', method='HEAD', path='/healthz', expect=status(200, empty=True)),
    dict(name='405 + Allow', method='POST', path='/healthz', body={},
         expect=problem(405, 'method-not-allowed', allow=['GET'])),
    dict(name='405 + Allow', method='DELETE', path='/readyz',
         expect=problem(405, 'method-not-allowed', allow=['GET'])),
    dict(name='405 + Allow, even without credentials', method='PUT', path='/products/1', body=pbody(),
         expect=problem(405, 'method-not-allowed', allow=['GET', 'PATCH', 'DELETE'])),
    dict(name='405 + Allow', method='DELETE', path='/products',
         expect=problem(405, 'method-not-allowed', allow=['GET', 'POST'])),
    dict(name='405 + Allow', method='PUT', path='/products', auth=True, body=pbody(),
         expect=problem(405, 'method-not-allowed', allow=['GET', 'POST'])),
    get('unknown path: 404 problem', '/nope', expect=problem(404, 'not-found')),
    get('unknown sub-resource: 404 problem', '/products/1/reviews', expect=problem(404, 'not-found')),
    get('the root is no resource: 404 problem', '/', expect=problem(404, 'not-found')),

    # ---- X-Request-Id
    get('X-Request-Id: a sane one is echoed', '/healthz', headers={'X-Request-Id': 'abc-123'},
        expect=status(200, headers={'X-Request-Id': 'abc-123'})),
    get('X-Request-Id: a UUID is echoed', '/healthz',
        headers={'X-Request-Id': '0f8fad5b-d9cb-469f-a165-70867728950e'},
        expect=status(200, headers={'X-Request-Id': '0f8fad5b-d9cb-469f-a165-70867728950e'})),
    get('X-Request-Id: echoed on errors too', '/nope', headers={'X-Request-Id': 'req-404-{{P}}'},
        expect=problem(404, 'not-found', headers={'X-Request-Id': 'req-404-{{P}}'})),
    get('X-Request-Id: a new one when absent, different per request', '/healthz',
        expect=status(200), check=check_fresh_ids),
    get('X-Request-Id: too long (300) is replaced', '/healthz', headers={'X-Request-Id': 'a' * 300},
        expect=status(200), check=check_rid_replaced('a' * 300)),
    get('X-Request-Id: with a space is replaced', '/healthz', headers={'X-Request-Id': 'abc 123'},
        expect=status(200), check=check_rid_replaced('abc 123')),
    get('X-Request-Id: with quotes is replaced', '/healthz', headers={'X-Request-Id': '"abc"'},
        expect=status(200), check=check_rid_replaced('"abc"')),
    get('X-Request-Id: with a control character is replaced', '/healthz',
        headers={'X-Request-Id': 'abc\x01def'}, expect=status(200), check=check_rid_replaced('abc\x01def')),
    get('X-Request-Id: with non-ASCII bytes is replaced', '/healthz',
        headers={'X-Request-Id': b'abc-\xc3\xa9'}, expect=status(200),
        check=check_rid_replaced('abc-\xc3\xa9')),
    get('X-Request-Id: empty is replaced', '/healthz', headers={'X-Request-Id': ''}, expect=status(200)),
    get('X-Request-Id: CRLF (folded header) never reaches a response header', '/healthz',
        raw_lines=[b'X-Request-Id: abc\r\n def'], expect=status((200, 400)),
        check=lambda r, ctx: ['the folded id was echoed: %r' % r.h('X-Request-Id')]
        if 'def' in (r.h('X-Request-Id') or '') or r.h('X-Request-Id') == 'abc' else []),

    # ---- reading products (seeded: product-1 ... product-200)
    get('list: default page of 50', '/products', expect=status(200, items=50),
        check=lambda r, ctx: [] if r.json.get('next') else ['next is null on a first page of 50']),
    get('list: limit=1', '/products?limit=1', expect=status(200, items=1),
        save={'c1': 'json:next', 'first_id': lambda r: str(r.json['items'][0]['id'])}),
    get('list: the cursor gives the next page', '/products?limit=1&after={{c1}}', expect=status(200),
        check=check_second_page),
    get('list: limit=500', '/products?limit=500', expect=status(200), check=check_limit_500),
    get('list: q matching nothing', '/products?q=zz-no-such-thing-zz',
        expect=status(200, json={'items': [], 'next': None})),
    get('list: unknown category', '/products?category=no-such-category',
        expect=status(200, json={'items': [], 'next': None})),
    get('list: limit=0', '/products?limit=0', expect=problem(400, 'bad-request')),
    get('list: limit=501', '/products?limit=501', expect=problem(400, 'bad-request')),
    get('list: limit=abc', '/products?limit=abc', expect=problem(400, 'bad-request')),
    get('list: limit=-1', '/products?limit=-1', expect=problem(400, 'bad-request')),
    get('list: limit=1.5', '/products?limit=1.5', expect=problem(400, 'bad-request')),
    get('list: limit=99999999999999999999', '/products?limit=99999999999999999999',
        expect=problem(400, 'bad-request')),
    get('list: a made-up cursor', '/products?after=not-a-cursor', expect=problem(400, 'bad-request')),
    get('list: a long made-up cursor', '/products?after=' + 'A' * 400, expect=problem(400, 'bad-request')),
    get('list: a cursor with a NUL', '/products?after=%00', expect=problem(400, 'bad-request')),
    get('list: a tampered cursor', '/products?limit=1&after={{c1}}x', expect=problem(400, 'bad-request')),

    get('by id', '/products/1', expect=status(200, json={'id': 1, 'slug': 'product-1'}),
        save={'etag1': 'header:ETag'}),
    get('by slug', '/products/product-1', expect=status(200, json={'id': 1, 'sku': 'SKU-000001'})),
    get('by slug, percent-encoded', '/products/product%2D1', expect=status(200, json={'id': 1})),
    dict(name='HEAD: status and ETag, no body', method='HEAD', path='/products/1',
         expect=status(200, empty=True, headers={'ETag': '{{etag1}}'})),
    get('If-None-Match current: 304 + ETag', '/products/1', headers={'If-None-Match': '{{etag1}}'},
        expect=status(304, empty=True, headers={'ETag': '{{etag1}}'})),
    get('If-None-Match weak: 304', '/products/1', headers={'If-None-Match': 'W/{{etag1}}'},
        expect=status(304, empty=True)),
    get('If-None-Match list: 304', '/products/1', headers={'If-None-Match': '"999999", {{etag1}}'},
        expect=status(304, empty=True)),
    get('If-None-Match *: 304', '/products/1', headers={'If-None-Match': '*'},
        expect=status(304, empty=True)),
    get('If-None-Match other: 200', '/products/1', headers={'If-None-Match': '"999999"'},
        expect=status(200, json={'id': 1})),
    get('If-None-Match by slug: 304', '/products/product-1', headers={'If-None-Match': '{{etag1}}'},
        expect=status(304, empty=True)),
] + [
    get('404 for %s' % what, '/products/' + key, expect=problem(404, 'not-found'))
    for what, key in [
        ('an unknown id', '999999999'), ('abc', 'abc'), ('0', '0'), ('-5', '-5'), ('1.5', '1.5'),
        ('2^63', '9223372036854775808'), ('2^63-1', '9223372036854775807'),
        ('2^64', '18446744073709551616'), ('30 digits', '1' * 30), ('+1', '%2B1'),
        ('1e3', '1e3'), ('a 3000-character key', 'x' * 3000),
        ('invalid UTF-8', '%FF%FE'), ('a space', 'product%201'), ('an upper-case slug', 'PRODUCT-1'),
    ]
] + [
    # nginx refuses %00 in a path itself (400, before any front-end runs)
    get('a NUL in the id: 404, or 400 from nginx, never 500', '/products/1%00', expect=status((404, 400))),

    # ---- auth (details in BAD); a lower-case scheme is the same scheme
    post('auth: the scheme is case-insensitive (bearer)',
         {'sku': '{{P}}-lc', 'name': 'Lower {{P}}', 'price_cents': 1, 'currency': 'EUR'},
         auth=None, headers={'Authorization': 'bearer {{token}}'}, expect=status(201)),

    # ---- creating
    post('201 + Location + ETag, every field',
         {'sku': '{{P}}-A', 'slug': '{{P}}-red-tee', 'name': 'Red tee {{P}}', 'category': 'apparel',
          'description': 'Soft cotton.', 'price_cents': 1999, 'currency': 'EUR'},
         expect=status(201, location=True, headers={'ETag': '"1"'},
                       json={'sku': '{{P}}-A', 'slug': '{{P}}-red-tee', 'name': 'Red tee {{P}}',
                             'category': 'apparel', 'description': 'Soft cotton.', 'price_cents': 1999,
                             'currency': 'EUR', 'version': 1}),
         check=lambda r, ctx: [] if r.json['created_at'] == r.json['updated_at'] else
         ['created_at != updated_at on a new product'],
         save={'id_a': 'json:id', 'slug_a': 'json:slug'}),
    get('the new product by id', '/products/{{id_a}}',
        expect=status(200, headers={'ETag': '"1"'},
                      json={'id': '{{#id_a}}', 'sku': '{{P}}-A', 'price_cents': 1999})),
    get('the new product by slug', '/products/{{slug_a}}', expect=status(200, json={'id': '{{#id_a}}'})),
    post('defaults: slug from the name, category general, description ""',
         {'sku': '{{P}}-B', 'name': 'Blue Mug {{P}}', 'price_cents': 0, 'currency': 'USD'},
         expect=status(201, location=True,
                       json={'slug': 'blue-mug-{{P}}', 'category': 'general', 'description': '',
                             'price_cents': 0, 'currency': 'USD'}),
         save={'slug_b': 'json:slug'}),
    post('a derived slug that is taken gets a new one',
         {'sku': '{{P}}-C', 'name': 'Blue Mug {{P}}', 'price_cents': 5, 'currency': 'USD'},
         expect=status(201), check=check_slug_c),
    post('slug derivation: punctuation and case ("Red tee, M")',
         {'sku': '{{P}}-D', 'name': 'Red tee, M {{P}}', 'price_cents': 1999, 'currency': 'EUR'},
         expect=status(201, json={'slug': 'red-tee-m-{{P}}'})),
    post('price_cents 10^12 (the maximum)',
         pbody(sku='{{P}}-max', name='Max {{P}}', price_cents=10 ** 12),
         expect=status(201, json={'price_cents': 10 ** 12})),
    post('sku of 64 characters, every allowed kind',
         pbody(sku='{{P}}-_.Az09' + 'x' * 49, name='Sku64 {{P}}'),
         expect=status(201, json={'sku': '{{P}}-_.Az09' + 'x' * 49})),
    post('slug of 100 characters', pbody(sku='{{P}}-s100', slug=long_slug(100)),
         expect=status(201, json={'slug': long_slug(100)})),
    post('name of 200 characters (400 bytes)', pbody(sku='{{P}}-n200', slug='{{P}}-n200', name='é' * 200),
         expect=status(201, json={'name': 'é' * 200})),
    post('name of one character', pbody(sku='{{P}}-n1', slug='{{P}}-n1', name='x'),
         expect=status(201, json={'name': 'x'})),
    post('description of 5000 characters (10000 bytes)',
         pbody(sku='{{P}}-d5000', name='D5000 {{P}}', description='ü' * 5000),
         expect=status(201, json={'description': 'ü' * 5000})),
    post('category of 64 characters', pbody(sku='{{P}}-c64', name='C64 {{P}}', category='c_-9' * 16),
         expect=status(201, json={'category': 'c_-9' * 16})),
    post('sku, name, escapes and non-BMP characters round-trip',
         pbody(sku='{{P}}-esc', name='Quote " back \\ slash / emoji \U0001F600 {{P}}'),
         expect=status(201, json={'name': 'Quote " back \\ slash / emoji \U0001F600 {{P}}'})),
    post('Content-Type with charset=UTF-8', pbody(sku='{{P}}-ct1', name='Ct1 {{P}}'),
         ctype='application/json; charset=UTF-8', expect=status(201)),
    post('Content-Type without the space', pbody(sku='{{P}}-ct2', name='Ct2 {{P}}'),
         ctype='application/json;charset=utf-8', expect=status(201)),
    post('a chunked body', pbody(sku='{{P}}-chunk', name='Chunked {{P}}'), chunked=True,
         expect=status(201, json={'sku': '{{P}}-chunk'})),
    post('for the q tests: a name with %', pbody(sku='{{P}}-pct', name='Sale 50% off {{P}}'),
         expect=status(201)),
    post('for the q tests: a name with _', pbody(sku='{{P}}-und', name='snake_case {{P}}'),
         expect=status(201)),
    post('for the q tests: a name with neither', pbody(sku='{{P}}-plain', name='Plain 50 off snakecase {{P}}'),
         expect=status(201)),

    # ---- merge patch
    post('a product to patch', pbody(sku='{{P}}-P', name='Patch me {{P}}', description='Old words'),
         expect=status(201), save={'id_p': 'json:id'}),
    patch('name', '{{id_p}}', {'name': 'Patched {{P}}'},
          expect=status(200, headers={'ETag': '"2"'}, json={'name': 'Patched {{P}}', 'version': 2})),
    patch('slug', '{{id_p}}', {'slug': 'patched-{{P}}'}, expect=status(200, json={'slug': 'patched-{{P}}'})),
    get('found by its new slug', '/products/patched-{{P}}', expect=status(200, json={'id': '{{#id_p}}'})),
    patch('category', '{{id_p}}', {'category': 'books'}, expect=status(200, json={'category': 'books'})),
    patch('description', '{{id_p}}', {'description': 'New words'},
          expect=status(200, json={'description': 'New words'})),
    patch('price_cents', '{{id_p}}', {'price_cents': 2500}, expect=status(200, json={'price_cents': 2500})),
    patch('currency', '{{id_p}}', {'currency': 'USD'}, expect=status(200, json={'currency': 'USD'})),
    patch('description null means ""', '{{id_p}}', {'description': None},
          expect=status(200, json={'description': ''}),
          save={'ver_p': 'json:version', 'etag_p': 'header:ETag'}),
    patch('{} changes nothing, not even the version', '{{id_p}}', {},
          expect=status(200, headers={'ETag': '{{etag_p}}'}), check=check_version_kept),
    patch('several fields, one new version', '{{id_p}}', {'name': 'Multi {{P}}', 'price_cents': 3000},
          expect=status(200, json={'name': 'Multi {{P}}', 'price_cents': 3000, 'slug': 'patched-{{P}}'}),
          check=lambda r, ctx: [] if r.json['version'] == int(ctx.vars['ver_p']) + 1 else
          ['version %r, expected %d' % (r.json['version'], int(ctx.vars['ver_p']) + 1)],
          save={'etag_p': 'header:ETag'}),
    patch('application/merge-patch+json', '{{id_p}}', {'description': 'Merged'},
          ctype='application/merge-patch+json', expect=status(200, json={'description': 'Merged'}),
          save={'etag_p': 'header:ETag'}),
    patch('If-Match current: 200', '{{id_p}}', {'price_cents': 3100}, headers={'If-Match': '{{etag_p}}'},
          expect=status(200, json={'price_cents': 3100})),
    patch('If-Match *: 200', '{{id_p}}', {'price_cents': 3200}, headers={'If-Match': '*'},
          expect=status(200, json={'price_cents': 3200}), save={'etag_p': 'header:ETag'}),
    patch('If-Match list with the current one: 200', '{{id_p}}', {'price_cents': 3300},
          headers={'If-Match': '"999999", {{etag_p}}'}, expect=status(200, json={'price_cents': 3300})),
    patch('by slug', 'patched-{{P}}', {'price_cents': 3400}, expect=status(200, json={'id': '{{#id_p}}'}),
          save={'etag_p': 'header:ETag', 'ver_p': 'json:version'}),
    get('every change is there', '/products/{{id_p}}',
        expect=status(200, headers={'ETag': '{{etag_p}}'},
                      json={'name': 'Multi {{P}}', 'slug': 'patched-{{P}}', 'category': 'books',
                            'description': 'Merged', 'price_cents': 3400, 'currency': 'USD'})),

    # ---- products the deletes use (AFTER), created now so BAD can refer to them
    post('a product to delete by id', pbody(sku='{{P}}-D1', name='Gone {{P}}zq one'),
         expect=status(201), save={'id_d1': 'json:id'}),
    post('a product to delete by slug', pbody(sku='{{P}}-D2', name='Gone {{P}}zq two'),
         expect=status(201), save={'slug_d2': 'json:slug', 'id_d2': 'json:id'}),
    post('a product to delete with If-Match', pbody(sku='{{P}}-D3', name='Gone {{P}}zq three'),
         expect=status(201), save={'id_d3': 'json:id', 'etag_d3': 'header:ETag'}),
    get('list: one page of the three to delete', '/products?q={{P}}zq&limit=1',
        expect=status(200, json={'items': [{'id': '{{#id_d1}}'}]}), save={'c_d1': 'json:next'}),
]

# Pagination walks: (name, query, limit, SQL condition giving the same rows).
WALKS = [
    ('every product', '', 7, 'true'),
    ('category=books', 'category=books', 9, "category = 'books'"),
    ('q=PRODUCT 1 (any case)', 'q=PRODUCT%201', 4, "strpos(lower(name), 'product 1') > 0 OR strpos(lower(sku), 'product 1') > 0"),
    ('q on the sku', 'q=sku-00019', 3, "strpos(lower(sku), 'sku-00019') > 0 OR strpos(lower(name), 'sku-00019') > 0"),
    ('q=% is literal', 'q=%25', 2, "strpos(name, '%') > 0 OR strpos(sku, '%') > 0"),
    ('q=_ is literal', 'q=_', 2, "strpos(name, '_') > 0 OR strpos(sku, '_') > 0"),
    ('q=50% off', 'q=50%25%20off', 2, "strpos(lower(name), '50% off') > 0"),
    ('q and category together', 'q={{P}}&category=general', 2,
     "(strpos(lower(name), '{{P}}') > 0 OR strpos(lower(sku), '{{P}}') > 0) AND category = 'general'"),
]

BAD = [
    # ---- authentication: nothing is written without the token
    post('no Authorization: 401 + WWW-Authenticate', pbody(sku='{{P}}-noauth'), auth=None,
         expect=problem(401, 'unauthorized', headers={'WWW-Authenticate': True})),
    post('wrong token: 403', pbody(sku='{{P}}-wrong'), auth=None,
         headers={'Authorization': 'Bearer not-the-token-0123456789abcdef'}, expect=problem(403, 'forbidden')),
    post('a token differing in the last character: 403', pbody(sku='{{P}}-wrong2'), auth=None,
         headers={'Authorization': 'Bearer {{token_off}}'}, expect=problem(403, 'forbidden')),
    post('Basic scheme: 401', pbody(sku='{{P}}-basic'), auth=None,
         headers={'Authorization': 'Basic YWRtaW46YWRtaW4='}, expect=problem(401, 'unauthorized')),
    post('Basic scheme carrying the token: 401', pbody(sku='{{P}}-basic2'), auth=None,
         headers={'Authorization': 'Basic {{token}}'}, expect=problem(401, 'unauthorized')),
    post('no Authorization and a broken body: 401 first', '{"sku":', auth=None,
         expect=problem(401, 'unauthorized')),
    patch('no Authorization: 401', '{{id_p}}', {'name': 'Hijacked'}, auth=None,
          expect=problem(401, 'unauthorized')),
    patch('wrong token: 403', '{{id_p}}', {'name': 'Hijacked'}, auth=None,
          headers={'Authorization': 'Bearer wrong-wrong-wrong-wrong'}, expect=problem(403, 'forbidden')),
    dict(name='no Authorization: 401', method='DELETE', path='/products/{{id_p}}',
         expect=problem(401, 'unauthorized')),
    dict(name='Basic scheme: 401', method='DELETE', path='/products/{{id_p}}',
         headers={'Authorization': 'Basic YWRtaW46YWRtaW4='}, expect=problem(401, 'unauthorized')),
    dict(name='wrong token: 403', method='DELETE', path='/products/{{id_p}}',
         headers={'Authorization': 'Bearer wrong-wrong-wrong-wrong'}, expect=problem(403, 'forbidden')),

    # ---- conflicts and preconditions
    post('a taken sku: 409 conflict', pbody(sku='{{P}}-A', slug='{{P}}-other'), expect=problem(409, 'conflict')),
    post('a taken slug: 409 conflict', pbody(sku='{{P}}-other', slug='{{slug_a}}'),
         expect=problem(409, 'conflict')),
    patch('a taken slug: 409 conflict', '{{id_p}}', {'slug': '{{slug_a}}'}, expect=problem(409, 'conflict')),
    patch('If-Match stale: 412', '{{id_p}}', {'name': 'Stale'}, headers={'If-Match': '"1"'},
          expect=problem(412, 'precondition-failed')),
    patch('If-Match weak (strong comparison): 412', '{{id_p}}', {'name': 'Weak'},
          headers={'If-Match': 'W/{{etag_p}}'}, expect=problem(412, 'precondition-failed')),
    dict(name='If-Match stale: 412', method='DELETE', path='/products/{{id_p}}', auth=True,
         headers={'If-Match': '"999999"'}, expect=problem(412, 'precondition-failed')),
    patch('unknown id: 404', '999999999', {'name': 'Ghost'}, expect=problem(404, 'not-found')),
    patch('id abc: 404', 'abc', {'name': 'Ghost'}, expect=problem(404, 'not-found')),
    patch('id 2^63: 404', '9223372036854775808', {'name': 'Ghost'}, expect=problem(404, 'not-found')),
    dict(name='unknown id: 404', method='DELETE', path='/products/999999999', auth=True,
         expect=problem(404, 'not-found')),
    dict(name='id 0: 404', method='DELETE', path='/products/0', auth=True, expect=problem(404, 'not-found')),
    dict(name='id -5: 404', method='DELETE', path='/products/-5', auth=True, expect=problem(404, 'not-found')),

    # ---- media type and size
    post('text/plain: 415', pbody(sku='{{P}}-415a'), ctype='text/plain',
         expect=problem(415, 'unsupported-media-type')),
    post('charset=latin1: 415', pbody(sku='{{P}}-415b'), ctype='application/json; charset=latin1',
         expect=problem(415, 'unsupported-media-type')),
    post('no Content-Type: 415', pbody(sku='{{P}}-415c'), ctype=NO_CT,
         expect=problem(415, 'unsupported-media-type')),
    post('a form: 415', 'sku=x&name=y', ctype='application/x-www-form-urlencoded',
         expect=problem(415, 'unsupported-media-type')),
    post('application/jsonx: 415', pbody(sku='{{P}}-415d'), ctype='application/jsonx',
         expect=problem(415, 'unsupported-media-type')),
    patch('text/plain: 415', '{{id_p}}', {'name': 'Plain'}, ctype='text/plain',
          expect=problem(415, 'unsupported-media-type')),
    post('a body over the limit: 413',
         lambda ctx: encode_body(pbody(sku=ctx.vars['P'] + '-big', description='x' * (ctx.body_limit + 1000))),
         expect=problem(413, 'payload-too-large')),
    post('a chunked body over the limit: 413',
         lambda ctx: encode_body(pbody(sku=ctx.vars['P'] + '-bigc', description='x' * (ctx.body_limit + 1000))),
         chunked=True, expect=problem(413, 'payload-too-large')),
    # 8 x the limit: past the web server's own limit too (nginx's
    # client_max_body_size in front of shop-fcgi); still the shop's 413
    # problem, the same body on every front-end (parity compares it)
    post('a body far over the limit (past the web server\'s own): 413',
         lambda ctx: encode_body(pbody(sku=ctx.vars['P'] + '-huge', description='x' * (8 * ctx.body_limit))),
         expect=problem(413, 'payload-too-large')),

    # ---- not JSON: 400
    b400('invalid JSON (truncated)', '{"sku":'),
    b400('invalid UTF-8 (raw \\xff)', b'{"sku":"{{P}}-u8","name":"bad \xff byte","price_cents":1,"currency":"EUR"}'),
    b400('invalid UTF-8 (overlong /)', b'{"sku":"{{P}}-u8b","name":"over\xc0\xaflong","price_cents":1,"currency":"EUR"}'),
    b400('invalid UTF-8 (encoded surrogate)', b'{"sku":"{{P}}-u8c","name":"x\xed\xa0\x80y","price_cents":1,"currency":"EUR"}'),
    b400('invalid UTF-8 (truncated sequence)', b'{"sku":"{{P}}-u8d","name":"x\xe2\x82","price_cents":1,"currency":"EUR"}'),
    b400('duplicate keys', '{"sku":"{{P}}-dup","sku":"{{P}}-dup2","name":"Dup","price_cents":1,"currency":"EUR"}'),
    b400('duplicate keys, one escaped ("\\u0073ku")',
         '{"sku":"{{P}}-dupe","\\u0073ku":"{{P}}-dupe2","name":"Dup","price_cents":1,"currency":"EUR"}'),
    b400('duplicate keys, both null', '{"sku":"{{P}}-dupn","name":"Dup","description":null,"description":null,"price_cents":1,"currency":"EUR"}'),
    b400('nesting 33 deep (arrays)', deep(33)),
    b400('nesting 33 deep (objects)', '{"a":' * 33 + '1' + '}' * 33),
    b400('trailing garbage', '{"sku":"{{P}}-tg","name":"T","price_cents":1,"currency":"EUR"} x'),
    b400('two documents', '{"sku":"{{P}}-two","name":"T","price_cents":1,"currency":"EUR"}{}'),
    b400('an empty body', ''),
    b400('only whitespace', '   \n'),
    b400('a lone surrogate "\\ud800"', '{"sku":"{{P}}-sur","name":"x\\ud800y","price_cents":1,"currency":"EUR"}'),
    b400('a lone low surrogate "\\udc00"', '{"sku":"{{P}}-sur2","name":"\\udc00","price_cents":1,"currency":"EUR"}'),
    b400('NaN', '{"sku":"{{P}}-nan","name":"N","price_cents":NaN,"currency":"EUR"}'),
    b400('Infinity', '{"sku":"{{P}}-inf","name":"N","price_cents":Infinity,"currency":"EUR"}'),
    b400('single quotes', "{'sku':'{{P}}-sq','name':'S','price_cents':1,'currency':'EUR'}"),
    b400('leading zeros', '{"sku":"{{P}}-lz","name":"L","price_cents":0123,"currency":"EUR"}'),
    b400('a trailing comma', '{"sku":"{{P}}-tc","name":"T","price_cents":1,"currency":"EUR",}'),
    b400('a comment', '{"sku":"{{P}}-cm",/* c */"name":"C","price_cents":1,"currency":"EUR"}'),
    b400('a raw control character in a string', '{"sku":"{{P}}-cc","name":"a\x01b","price_cents":1,"currency":"EUR"}'),
    b400('an invalid escape', '{"sku":"{{P}}-ie","name":"a\\xb","price_cents":1,"currency":"EUR"}'),
    b400('an unquoted key', '{sku:"{{P}}-uq","name":"U","price_cents":1,"currency":"EUR"}'),
    b400('a bare word', 'hello'),
    dict(name='invalid JSON in a patch: 400', method='PATCH', path='/products/{{id_p}}', auth=True,
         body='{"name":', expect=problem(400, 'bad-request')),
    dict(name='duplicate keys in a patch: 400', method='PATCH', path='/products/{{id_p}}', auth=True,
         body='{"name":"A","name":"B"}', expect=problem(400, 'bad-request')),

    # ---- valid JSON, invalid product: 422 naming the field
    v422('nesting 32 deep parses, then fails validation', deep(32), []),
    v422('body is an array', [], []),
    v422('body is a string', '"product"', []),
    v422('body is a number', '42', []),
    v422('body is null', 'null', []),
    v422('body is true', 'true', []),
    v422('missing every required field', {}, ['sku', 'name', 'price_cents', 'currency']),
    v422('missing sku', pbody(sku=DROP), ['sku']),
    v422('missing name', pbody(name=DROP), ['name']),
    v422('missing price_cents', pbody(price_cents=DROP), ['price_cents']),
    v422('missing currency', pbody(currency=DROP), ['currency']),
    v422('an unknown field', pbody(color='red'), ['color']),
    v422('id is not writable', pbody(id=5), ['id']),
    v422('version is not writable', pbody(version=3), ['version']),
    v422('created_at is not writable', pbody(created_at='2026-01-01T00:00:00.000Z'), ['created_at']),
    v422('two bad fields, both named', pbody(sku='a b', price_cents=-1), ['sku', 'price_cents']),
    v422('sku empty', pbody(sku=''), ['sku']),
    v422('sku of 65 characters', pbody(sku='{{P}}' + 'x' * 57), ['sku']),
    v422('sku with a space', pbody(sku='a b'), ['sku']),
    v422('sku with a slash', pbody(sku='a/b'), ['sku']),
    v422('sku with a non-ASCII letter', pbody(sku='ä{{P}}'), ['sku']),
    v422('sku not a string', pbody(sku=123), ['sku']),
    v422('slug with upper case', pbody(slug='Bad-{{P}}'), ['slug']),
    v422('slug with an underscore', pbody(slug='a_{{P}}'), ['slug']),
    v422('slug with a space', pbody(slug='a {{P}}'), ['slug']),
    v422('slug empty', pbody(slug=''), ['slug']),
    v422('slug of 101 characters', pbody(slug=long_slug(101)), ['slug']),
    v422('name empty', pbody(name=''), ['name']),
    v422('name of 201 characters', pbody(name='é' * 201, slug='{{P}}-n201'), ['name']),
    v422('name not a string', pbody(name=123), ['name']),
    v422('name null', pbody(name=None), ['name']),
    v422('category with upper case', pbody(category='Apparel'), ['category']),
    v422('category with a space', pbody(category='home garden'), ['category']),
    v422('category empty', pbody(category=''), ['category']),
    v422('category of 65 characters', pbody(category='c' * 65), ['category']),
    v422('description of 5001 characters', pbody(description='ü' * 5001), ['description']),
    v422('description not a string', pbody(description=5), ['description']),
    v422('price_cents -1', pbody(price_cents=-1), ['price_cents']),
    v422('price_cents 10^12+1', pbody(price_cents=10 ** 12 + 1), ['price_cents']),
    v422('price_cents 2^63', '{"sku":"{{P}}-p63","name":"P","price_cents":9223372036854775808,"currency":"EUR"}',
         ['price_cents']),
    v422('price_cents 1.5', pbody(price_cents=1.5), ['price_cents']),
    v422('price_cents 1.0', '{"sku":"{{P}}-p10","name":"P","price_cents":1.0,"currency":"EUR"}', ['price_cents']),
    v422('price_cents 1e3', '{"sku":"{{P}}-pe3","name":"P","price_cents":1e3,"currency":"EUR"}', ['price_cents']),
    v422('price_cents "100"', pbody(price_cents='100'), ['price_cents']),
    v422('price_cents null', pbody(price_cents=None), ['price_cents']),
    v422('price_cents true', pbody(price_cents=True), ['price_cents']),
    v422('currency eur', pbody(currency='eur'), ['currency']),
    v422('currency EURO', pbody(currency='EURO'), ['currency']),
    v422('currency ""', pbody(currency=''), ['currency']),
    v422('currency E1R', pbody(currency='E1R'), ['currency']),
    v422('currency null', pbody(currency=None), ['currency']),
    v422('PATCH: name null', {'name': None}, ['name'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: price_cents null', {'price_cents': None}, ['price_cents'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: currency null', {'currency': None}, ['currency'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: sku is not patchable', {'sku': '{{P}}-new'}, ['sku'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: id is not patchable', {'id': 1}, ['id'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: an unknown field', {'colour': 'red'}, ['colour'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: price_cents -1', {'price_cents': -1}, ['price_cents'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: price_cents 1.5', {'price_cents': 1.5}, ['price_cents'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: slug with upper case', {'slug': 'Nope'}, ['slug'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: name of 201 characters', {'name': 'é' * 201}, ['name'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: currency eur', {'currency': 'eur'}, ['currency'], 'PATCH', '/products/{{id_p}}'),
    v422('PATCH: body is an array', [], [], 'PATCH', '/products/{{id_p}}'),
]

AFTER = [
    dict(name='204, no body', method='DELETE', path='/products/{{id_d1}}', auth=True,
         expect=status(204, empty=True)),
    get('gone: 404', '/products/{{id_d1}}', expect=problem(404, 'not-found')),
    get('a cursor outlives the deletion of its product', '/products?q={{P}}zq&limit=1&after={{c_d1}}',
        expect=status(200, json={'items': [{'id': '{{#id_d2}}'}]})),
    dict(name='again: 404', method='DELETE', path='/products/{{id_d1}}', auth=True,
         expect=problem(404, 'not-found')),
    dict(name='by slug: 204', method='DELETE', path='/products/{{slug_d2}}', auth=True,
         expect=status(204, empty=True)),
    get('gone by id too: 404', '/products/{{id_d2}}', expect=problem(404, 'not-found')),
    dict(name='If-Match current: 204', method='DELETE', path='/products/{{id_d3}}', auth=True,
         headers={'If-Match': '{{etag_d3}}'}, expect=status(204, empty=True)),
    get('all three gone from the list', '/products?q={{P}}zq',
        expect=status(200, json={'items': [], 'next': None})),
]

# The same requests against every target; the responses must agree.
PARITY = [
    get('health', '/healthz'), get('ready', '/readyz'),
    get('by id', '/products/1'), get('by slug', '/products/product-2'), get('list', '/products?limit=3'),
    get('list q', '/products?q=product%2019&limit=5'), get('list category', '/products?category=toys&limit=4'),
    get('304', '/products/1', headers={'If-None-Match': '"1"'}),
    get('404', '/products/abc'), get('404 path', '/nope'), get('400 limit', '/products?limit=0'),
    get('400 cursor', '/products?after=zzz'),
    dict(name='405', method='PUT', path='/products/1', body={}),
    dict(name='HEAD', method='HEAD', path='/products/1'),
    post('401', pbody(sku='{{P}}-x'), auth=None),
    post('403', pbody(sku='{{P}}-x'), auth=None, headers={'Authorization': 'Bearer nope-nope-nope-nope'}),
    post('415', pbody(sku='{{P}}-x'), ctype='text/plain'),
    post('400 json', '{"sku":'), post('400 dup', '{"a":1,"a":2}'), post('400 depth', deep(33)),
    post('422 empty', {}), post('422 fields', pbody(sku='a b', price_cents=1.5, currency='eur', color=1)),
    post('201', {'sku': '{{P}}-par', 'name': 'Parity {{P}}', 'price_cents': 700, 'currency': 'EUR',
                 'description': 'same everywhere'}, save={'id_par': 'json:id'}),
    post('409', pbody(sku='{{P}}-par')),
    patch('200', '{{id_par}}', {'price_cents': 701, 'description': None}),
    patch('412', '{{id_par}}', {'price_cents': 702}, headers={'If-Match': '"1"'}),
    patch('422', '{{id_par}}', {'name': None}),
    dict(name='204', method='DELETE', path='/products/{{id_par}}', auth=True),
    dict(name='404 after delete', method='DELETE', path='/products/{{id_par}}', auth=True),
]


# ------------------------------------------------------------------ sections

def run_walk(ctx, name, query, limit, where):
    tg = ctx.tg
    query, where = subst(query, ctx.vars), subst(where, ctx.vars)
    label_ = '[%s] GET /products?%s: walk every page of %d (%s)' % (
        tg.name, (query + '&' if query else '') + 'limit=%d' % limit, limit, name)
    seen, errs, after, pages = [], [], None, 0
    try:
        while pages < 500:
            path = '/products?' + '&'.join(x for x in [query, 'limit=%d' % limit,
                                                         'after=' + urllib.parse.quote(after, safe='')
                                                         if after else ''] if x)
            r = send(tg, 'GET', path)
            pages += 1
            if r.status != 200:
                errs.append('page %d (%s): status %d' % (pages, path, r.status))
                errs.append(r.summary())
                break
            errs += convention_errors({'method': 'GET'}, r)
            items, nxt = r.json.get('items', []), r.json.get('next')
            if len(items) > limit:
                errs.append('page %d has %d items, limit %d' % (pages, len(items), limit))
            if nxt is not None and len(items) != limit:
                errs.append('page %d is not full (%d of %d) yet has a next cursor' % (pages, len(items), limit))
            seen += [p.get('id') for p in items]
            if nxt is None:
                break
            after = nxt
        else:
            errs.append('more than 500 pages: next never becomes null')
    except Exception as e:     # noqa: BLE001
        errs.append('request failed: %r' % e)
    dups = sorted({i for i in seen if seen.count(i) > 1})
    if dups:
        errs.append('duplicates across pages: %s' % dups[:20])
    if ctx.db is not None and not errs:
        want = ctx.db.ids(where)
        if sorted(seen) != want:
            missing, extra = sorted(set(want) - set(seen)), sorted(set(seen) - set(want))
            errs.append('walked %d products, the table has %d; missing %s, unexpected %s'
                        % (len(seen), len(want), missing[:20], extra[:20]))
        if not want:
            errs.append('the walk compares nothing: no rows match %s' % where)
    elif ctx.db is None and not seen:
        errs.append('no products walked')
    ctx.tap.result(label_, errs)


def run_bad(ctx):
    """Each bad input: the right problem, and the database unchanged."""
    first = before = None
    if ctx.db is not None:
        try:
            first = before = ctx.db.snapshot()
        except Exception as e:     # noqa: BLE001
            ctx.tap.result('[%s] bad inputs: database snapshot' % ctx.tg.name, [repr(e)])
            ctx.db = None
    for case in BAD:
        def unchanged(r):
            nonlocal before
            if ctx.db is None:
                return []
            after = ctx.db.snapshot()
            if after != before:
                before = after
                return ['the database changed (products/events/stock snapshot differs)']
            return []
        run_case(ctx, case, extra_check=unchanged)
    if ctx.db is None:
        ctx.tap.skip('[%s] bad inputs: the database is unchanged after the whole table' % ctx.tg.name,
                     'no database (PGHOST unset)')
    else:
        last = ctx.db.snapshot()
        ctx.tap.result('[%s] bad inputs: the database is unchanged after the whole table' % ctx.tg.name,
                       [] if last == first else ['snapshot before %s, after %s' % (first, last)])


def run_concurrent(ctx):
    tg, P, tok = ctx.tg, ctx.vars['P'], ctx.token
    auth = [('Authorization', 'Bearer ' + tok), ('Content-Type', 'application/json')]

    def body(**kw):
        return json.dumps(kw).encode()

    n = 48
    res = parallel(n, lambda i: send(tg, 'GET', '/products/%d' % (i % 200 + 1)))
    errs = ['request %d: %s' % (i, r if not isinstance(r, Resp) else r.status) for i, r in enumerate(res)
            if not (isinstance(r, Resp) and r.status == 200 and r.json.get('id') == i % 200 + 1)]
    ctx.tap.result('[%s] concurrency: %d parallel GET /products/{id} all 200 with the right product'
                   % (tg.name, n), errs[:10])

    n = 12
    res = parallel(n, lambda i: send(tg, 'POST', '/products', auth,
                                     body(sku=P + '-race', name='Race %d %s' % (i, P), price_cents=1,
                                          currency='EUR')))
    c = tally(res)
    ok = c.get(201) == 1 and c.get(409) == n - 1 and all(
        r.json.get('type', '').endswith('/conflict') for r in res if isinstance(r, Resp) and r.status == 409)
    ctx.tap.result('[%s] concurrency: %d parallel POSTs of one sku: one 201, %d 409 conflict'
                   % (tg.name, n, n - 1), [] if ok else ['got %s' % c])

    r = send(tg, 'POST', '/products', auth, body(sku=P + '-race-p', name='Race patch ' + P, price_cents=1,
                                                    currency='EUR'))
    if r.status != 201:
        ctx.tap.result('[%s] concurrency: parallel PATCHes with one If-Match' % tg.name,
                       ['setup POST: ' + r.summary()])
    else:
        pid, etag = r.json['id'], r.h('ETag')
        res = parallel(n, lambda i: send(tg, 'PATCH', '/products/%d' % pid, auth + [('If-Match', etag)],
                                         body(price_cents=100 + i)))
        c = tally(res)
        final = send(tg, 'GET', '/products/%d' % pid)
        ok = c.get(200) == 1 and c.get(412) == n - 1 and final.json.get('version') == 2
        ctx.tap.result('[%s] concurrency: %d parallel PATCHes with one If-Match: one 200, %d 412'
                       % (tg.name, n, n - 1),
                       [] if ok else ['got %s, final version %s' % (c, final.json.get('version'))])

    n = 8
    res = parallel(n, lambda i: send(tg, 'POST', '/products', auth,
                                     body(sku='%s-same%d' % (P, i), name='Same name ' + P, price_cents=1,
                                          currency='EUR')))
    c = tally(res)
    slugs = [r.json.get('slug') for r in res if isinstance(r, Resp) and r.status == 201]
    ok = c.get(201) == n and len(set(slugs)) == n
    ctx.tap.result('[%s] concurrency: %d parallel POSTs of one name, no slug: all 201, distinct slugs'
                   % (tg.name, n), [] if ok else ['got %s, slugs %s' % (c, sorted(map(str, slugs)))])


def run_outage_down(ctx):
    """PostgreSQL is stopped: fast 503s, health still fine."""
    run_table(ctx, [
        get('database down: liveness stays 200', '/healthz', expect=status(200, max_seconds=2)),
        get('database down: readiness 503 + Retry-After, fast', '/readyz',
            expect=problem(503, 'unavailable', max_seconds=3)),
        get('database down: reads 503, fast', '/products/1', expect=problem(503, 'unavailable', max_seconds=3)),
        get('database down: lists 503, fast', '/products', expect=problem(503, 'unavailable', max_seconds=3)),
        post('database down: writes 503, fast', pbody(sku='{{P}}-down'),
             expect=problem(503, 'unavailable', max_seconds=3)),
        get('database down: validation still answers without it', '/products?limit=0',
            expect=problem(400, 'bad-request', max_seconds=2)),
    ])


def run_outage_up(ctx, pool=4):
    """PostgreSQL is back: readiness returns; then every request succeeds."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < 20:
        try:
            last = send(ctx.tg, 'GET', '/readyz', timeout=5)
            if last.status == 200:
                break
        except OSError as e:
            last = e
        time.sleep(0.25)
    ok = isinstance(last, Resp) and last.status == 200
    ctx.tap.result('[%s] database back: /readyz 200 again (after %.1f s)' % (ctx.tg.name, time.monotonic() - t0),
                   [] if ok else ['still %s after 20 s' % (last.summary() if isinstance(last, Resp) else last)])
    n = 4 * pool
    res = [send(ctx.tg, 'GET', '/products/%d' % (i + 1)) for i in range(n)]
    bad = ['GET /products/%d: %d' % (i + 1, r.status) for i, r in enumerate(res) if r.status != 200]
    ctx.tap.result('[%s] database back: the next %d reads all succeed (no stale pooled connection)'
                   % (ctx.tg.name, n), bad)
    run_case(ctx, post('database back: writes succeed', pbody(sku='{{P}}-up', name='Back {{P}}'),
                       expect=status(201)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--target', action='append', required=True, help='NAME=URL (repeatable)')
    ap.add_argument('--token-file', required=True)
    ap.add_argument('--body-limit', type=int, default=1 << 20, help="the server's body limit in bytes")
    ap.add_argument('--phase', default='main', choices=['main', 'outage-down', 'outage-up'])
    ap.add_argument('--pool-size', type=int, default=4)
    ap.add_argument('--webhook-secret-file', help="the payment webhook's secret (orders.py's webhook cases)")
    args = ap.parse_args()

    with open(args.token_file, encoding='ascii') as f:
        token = f.read().strip()
    last = token[-1]
    token_off = token[:-1] + ('0' if last != '0' else '1')
    secret = orders.read_secret(args.webhook_secret_file)
    db = Db.open()
    tap = Tap()
    run = ''.join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    ctxs = []
    for i, spec in enumerate(args.target):
        tg = Target(spec)
        # P: 8 characters, lower-case, unique per run and target (skus, slugs, names).
        P = 't%d%s%s' % (i, run, random.choice(string.ascii_lowercase))
        P = (P + 'zzzzzzzz')[:8]
        vars = {'P': P, 'T': tg.name, 'token': token, 'token_off': token_off}
        ctxs.append(Ctx(tap, tg, token, db, args.body_limit, vars, secret))
    if db is None:
        tap.diag('PGHOST is not set: database comparisons are skipped')

    for ctx in ctxs:
        tap.diag('target %s = %s (run prefix %s)' % (ctx.tg.name, ctx.tg.url, ctx.vars['P']))
        if args.phase == 'outage-down':
            run_outage_down(ctx)
            continue
        if args.phase == 'outage-up':
            run_outage_up(ctx, args.pool_size)
            continue
        run_table(ctx, MAIN)
        for w in WALKS:
            run_walk(ctx, *w)
        run_bad(ctx)
        run_table(ctx, AFTER)
        run_concurrent(ctx)
        orders.run(ctx)
        hostile.run(ctx)
    if args.phase == 'main':
        hostile.run_after(tap, ctxs)
    # Every case above, compared across the targets; then the parity tables.
    run_case_parity(tap, ctxs)
    if args.phase == 'main':
        run_parity(tap, ctxs, PARITY)
        orders.run_parity(tap, ctxs)
    print('1..%d' % tap.n)
    return 1 if tap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
