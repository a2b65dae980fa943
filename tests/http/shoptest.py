"""Shared by the HTTP suite's files (suite.py, orders.py): TAP output, the
HTTP client, psql access, {{var}} substitution, the checks every response
must pass (API.md's conventions, products and orders as the API shows
them), the table-driven case runner, parallel requests and parity.

Python 3 standard library only.
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

TS_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
SLUG_RE = re.compile(r'^[a-z0-9-]{1,100}$')
PRODUCT_KEYS = {'id', 'sku', 'slug', 'name', 'category', 'description', 'price_cents',
                'currency', 'version', 'created_at', 'updated_at'}
ORDER_KEYS = {'id', 'status', 'items', 'total_cents', 'currency', 'customer_email', 'version',
              'created_at', 'updated_at'}
ORDER_LINE_KEYS = {'sku', 'quantity', 'unit_price_cents', 'warehouse'}
ORDER_STATES = ('pending', 'paid', 'packed', 'shipped', 'delivered', 'cancelled', 'refunded')
UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
PROBLEM_TYPES = {
    400: {'bad-request'}, 401: {'unauthorized'}, 403: {'forbidden'}, 404: {'not-found'},
    405: {'method-not-allowed'}, 409: {'conflict', 'insufficient-stock', 'invalid-transition'},
    412: {'precondition-failed'}, 413: {'payload-too-large'}, 415: {'unsupported-media-type'},
    422: {'validation'}, 500: {'internal'}, 503: {'unavailable'},
}
LEAKS = ['SELECT', 'ERROR:', 'shop.', '/usr/', '/tmp/', 'pq', 'violates']
DROP = object()          # pbody(field=DROP) leaves the field out
NO_CT = object()         # 'ctype': NO_CT sends a body without Content-Type


# ----------------------------------------------------------------------- TAP

class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0
        self.lock = threading.Lock()

    def result(self, name, errors, diag=()):
        name = name.replace('#', 'no.').replace('\n', ' ')
        with self.lock:
            self.n += 1
            if errors:
                self.failed += 1
                print('not ok %d - %s' % (self.n, name))
                for e in errors:
                    for line in str(e).splitlines() or ['']:
                        print('#   ' + line)
                for d in diag:
                    for line in str(d).splitlines():
                        print('#     ' + line)
            else:
                print('ok %d - %s' % (self.n, name))
            sys.stdout.flush()

    def skip(self, name, why):
        with self.lock:
            self.n += 1
            print('ok %d - %s # SKIP %s' % (self.n, name, why))
            sys.stdout.flush()

    def diag(self, text):
        for line in text.splitlines():
            print('# ' + line)
        sys.stdout.flush()


# ---------------------------------------------------------------------- HTTP

class Target:
    def __init__(self, spec):
        if '=' not in spec:
            raise SystemExit('--target NAME=URL, got %r' % spec)
        self.name, url = spec.split('=', 1)
        u = urllib.parse.urlsplit(url)
        if u.scheme != 'http' or not u.hostname:
            raise SystemExit('only http://host:port[/prefix] targets: %r' % url)
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip('/')
        self.url = url.rstrip('/')


class Resp:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers            # [(name, value)], as received
        self.body = body or b''
        self.elapsed = elapsed
        self.json = None
        self.json_error = None
        if self.body:
            try:
                self.json = json.loads(self.body.decode('utf-8'))
            except (ValueError, UnicodeDecodeError) as e:
                self.json_error = str(e)

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def h(self, name):
        v = self.all(name)
        return v[0] if v else None

    def media(self):
        ct = self.h('Content-Type')
        return ct.split(';')[0].strip().lower() if ct else None

    def summary(self, limit=600):
        hs = ''.join('%s: %s\n' % kv for kv in self.headers)
        body = self.body.decode('utf-8', 'replace')
        if len(body) > limit:
            body = body[:limit] + '... (%d bytes)' % len(self.body)
        return 'got %d\n%s\n%s' % (self.status, hs.rstrip(), body)


def send(tg, method, path, headers=(), body=None, chunked=False, raw_lines=None, timeout=15):
    """One request on a fresh connection. headers: [(name, str|bytes)]."""
    target = tg.prefix + path
    t0 = time.monotonic()
    if raw_lines is not None:
        return send_raw(tg, method, target, headers, body, raw_lines, timeout, t0)
    conn = http.client.HTTPConnection(tg.host, tg.port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if body is not None and chunked:
            conn.putheader('Transfer-Encoding', 'chunked')
        elif body is not None:
            conn.putheader('Content-Length', str(len(body)))
        conn.endheaders()
        try:
            if body is not None and chunked:
                for i in range(0, len(body), 8192):
                    part = body[i:i + 8192]
                    conn.send(b'%x\r\n%s\r\n' % (len(part), part))
                conn.send(b'0\r\n\r\n')
            elif body:
                conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass                       # the server answered early; read that answer
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, r.getheaders(), data, time.monotonic() - t0)
    finally:
        conn.close()


def send_raw(tg, method, target, headers, body, raw_lines, timeout, t0):
    """A request written byte by byte: header lines http.client refuses."""
    head = ['%s %s HTTP/1.1' % (method, target), 'Host: %s:%d' % (tg.host, tg.port)]
    out = '\r\n'.join(head).encode() + b'\r\n'
    for k, v in headers:
        out += k.encode() + b': ' + (v if isinstance(v, bytes) else v.encode('latin-1')) + b'\r\n'
    for line in raw_lines:
        out += line + b'\r\n'
    if body is not None:
        out += b'Content-Length: %d\r\n' % len(body)
    out += b'Connection: close\r\n\r\n' + (body or b'')
    s = socket.create_connection((tg.host, tg.port), timeout=timeout)
    try:
        s.sendall(out)
        r = http.client.HTTPResponse(s, method=method)
        r.begin()
        data = r.read()
        return Resp(r.status, r.getheaders(), data, time.monotonic() - t0)
    finally:
        s.close()


# ------------------------------------------------------------------ database

class Db:
    """psql through the PG* environment; None when there is no database."""
    SNAPSHOT = (
        "SELECT concat_ws(' ',"
        " (SELECT count(*) FROM shop.products),"
        " (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) FROM shop.products t),"
        " (SELECT count(*) FROM shop.events),"
        " (SELECT md5(coalesce(string_agg(e::text, ',' ORDER BY id), '')) FROM shop.events e),"
        " (SELECT md5(coalesce(string_agg(s::text, ',' ORDER BY product_id, warehouse), ''))"
        "  FROM shop.stock s))")

    @staticmethod
    def open():
        if not os.environ.get('PGHOST'):
            return None
        return Db()

    def __init__(self):
        self.proc = None
        self.lock = threading.Lock()

    def query(self, sql):
        """The lines psql prints for one statement (unaligned, tuples only);
        RuntimeError with psql's message when it fails. One psql session
        serves every query (starting psql per query costs ~50 ms)."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = subprocess.Popen(['psql', '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=0'],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL, text=True, bufsize=1)
            end = '__shop_query_end__'
            self.proc.stdin.write('%s;\n\\echo %s :ERROR\n' % (sql.strip().rstrip(';'), end))
            self.proc.stdin.flush()
            lines = []
            for line in self.proc.stdout:
                line = line.rstrip('\n')
                if not line.startswith(end):
                    lines.append(line)
                    continue
                if line.split()[-1] != 'false':
                    self.proc.stdin.write('\\echo :LAST_ERROR_MESSAGE\n')
                    self.proc.stdin.flush()
                    raise RuntimeError('psql: %s' % self.proc.stdout.readline().strip())
                return [x for x in lines if x != '']
            raise RuntimeError('psql: the session ended (exit status %s)' % self.proc.wait())

    def snapshot(self):
        return self.query(self.SNAPSHOT)[0]

    def ids(self, where):
        return [int(x) for x in self.query('SELECT id FROM shop.products WHERE %s ORDER BY id' % where)]


# ------------------------------------------------------------- substitution

VAR_RE = re.compile(r'\{\{(#?)(\w+)\}\}')


class Missing(Exception):
    pass


def subst(obj, vars):
    """Replaces {{name}} (and '{{#name}}' as a whole string: an int) in
    strings, bytes, dict keys and values, lists."""
    if isinstance(obj, str):
        m = VAR_RE.fullmatch(obj)
        if m and m.group(1) == '#':
            if m.group(2) not in vars:
                raise Missing(m.group(2))
            return int(vars[m.group(2)])

        def rep(m):
            if m.group(2) not in vars:
                raise Missing(m.group(2))
            return str(vars[m.group(2)])
        return VAR_RE.sub(rep, obj)
    if isinstance(obj, bytes):
        return subst(obj.decode('latin-1'), vars).encode('latin-1') if b'{{' in obj else obj
    if isinstance(obj, dict):
        return {subst(k, vars): subst(v, vars) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(subst(v, vars) for v in obj)
    return obj


# ------------------------------------------------------------------- checks

def subset_errors(want, got, where='body'):
    """want is a subset of got: dicts by key, lists element-wise (same length),
    scalars equal with the same JSON type (1 is not true, 1 is not 1.0)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return ['%s: expected an object, got %r' % (where, got)]
        errs = []
        for k, v in want.items():
            if k not in got:
                errs.append('%s: missing key %r' % (where, k))
            else:
                errs += subset_errors(v, got[k], '%s.%s' % (where, k))
        return errs
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return ['%s: expected %r, got %r' % (where, want, got)]
        errs = []
        for i, (w, g) in enumerate(zip(want, got)):
            errs += subset_errors(w, g, '%s[%d]' % (where, i))
        return errs
    if type(want) is not type(got) or want != got:
        return ['%s: expected %r, got %r' % (where, want, got)]
    return []


def leak_errors(body):
    text = body.decode('utf-8', 'replace').replace('shop.example', '')
    return ['body leaks internals: contains %r' % w for w in LEAKS if w in text]


def problem_errors(r, suffix=None):
    errs = []
    if r.media() != 'application/problem+json':
        errs.append('Content-Type %r, expected application/problem+json' % r.h('Content-Type'))
    j = r.json
    if not isinstance(j, dict):
        return errs + ['problem body is not a JSON object (%s)' % (r.json_error or type(j).__name__)]
    t = j.get('type')
    allowed = {suffix} if suffix else PROBLEM_TYPES.get(r.status, set())
    if not isinstance(t, str) or not any(t.endswith('/' + s) for s in allowed):
        errs.append('type %r, expected one ending in /%s' % (t, '|'.join(sorted(allowed)) or '?'))
    if not isinstance(j.get('title'), str) or not j.get('title'):
        errs.append('title missing or empty')
    if j.get('status') != r.status or type(j.get('status')) is not int:
        errs.append('status member %r differs from the HTTP status %d' % (j.get('status'), r.status))
    if not isinstance(j.get('detail'), str) or not j.get('detail'):
        errs.append('detail missing or empty')
    if 'errors' in j:
        e = j['errors']
        if not isinstance(e, list) or not all(isinstance(x, dict) and set(x) == {'field', 'message'}
                                              and isinstance(x['field'], str)
                                              and isinstance(x['message'], str) and x['message']
                                              for x in e):
            errs.append('errors must be a list of {"field","message"} objects, got %r' % (e,))
    return errs + leak_errors(r.body)


def timestamp_errors(obj, where='body'):
    errs = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k.endswith('_at') and not (isinstance(v, str) and TS_RE.match(v)):
                errs.append('%s.%s: %r is not a UTC RFC 3339 timestamp with milliseconds' % (where, k, v))
            errs += timestamp_errors(v, '%s.%s' % (where, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            errs += timestamp_errors(v, '%s[%d]' % (where, i))
    return errs


def is_product(j):
    return isinstance(j, dict) and 'sku' in j and 'price_cents' in j


def product_errors(p, where='body'):
    errs = []
    if set(p) != PRODUCT_KEYS:
        errs.append('%s: product fields %s, expected %s' % (where, sorted(p), sorted(PRODUCT_KEYS)))
    types = {'id': int, 'sku': str, 'slug': str, 'name': str, 'category': str, 'description': str,
             'price_cents': int, 'currency': str, 'version': int}
    for k, t in types.items():
        if k in p and type(p[k]) is not t:
            errs.append('%s.%s: %r is not %s' % (where, k, p[k], t.__name__))
    if isinstance(p.get('slug'), str) and not SLUG_RE.match(p['slug']):
        errs.append('%s.slug %r breaks the slug rule' % (where, p['slug']))
    if isinstance(p.get('currency'), str) and not re.fullmatch(r'[A-Z]{3}', p['currency']):
        errs.append('%s.currency %r' % (where, p['currency']))
    if isinstance(p.get('created_at'), str) and isinstance(p.get('updated_at'), str) \
            and p['updated_at'] < p['created_at']:
        errs.append('%s: updated_at before created_at' % where)
    return errs


def is_order(j):
    return isinstance(j, dict) and 'status' in j and 'customer_email' in j


def order_errors(o, where='body'):
    """An order as API.md shows it: exactly its fields, lines with exactly
    theirs, a lower-case UUID, a known status, total = sum of the lines."""
    errs = []
    if set(o) != ORDER_KEYS:
        errs.append('%s: order fields %s, expected %s' % (where, sorted(o), sorted(ORDER_KEYS)))
    if not (isinstance(o.get('id'), str) and UUID_RE.match(o['id'])):
        errs.append('%s.id %r is not a lower-case UUID' % (where, o.get('id')))
    if o.get('status') not in ORDER_STATES:
        errs.append('%s.status %r is not one of the seven states' % (where, o.get('status')))
    for k in ('total_cents', 'version'):
        if type(o.get(k)) is not int:
            errs.append('%s.%s: %r is not an integer' % (where, k, o.get(k)))
    if not (isinstance(o.get('currency'), str) and re.fullmatch(r'[A-Z]{3}', o['currency'])):
        errs.append('%s.currency %r' % (where, o.get('currency')))
    lines = o.get('items')
    if not isinstance(lines, list) or not lines:
        return errs + ['%s.items: expected a non-empty list, got %r' % (where, lines)]
    total = 0
    for i, ln in enumerate(lines):
        w = '%s.items[%d]' % (where, i)
        if not isinstance(ln, dict) or set(ln) != ORDER_LINE_KEYS:
            errs.append('%s: line fields %s, expected %s' % (w, sorted(ln) if isinstance(ln, dict) else ln,
                                                           sorted(ORDER_LINE_KEYS)))
            continue
        if type(ln['quantity']) is not int or ln['quantity'] < 1 or type(ln['unit_price_cents']) is not int:
            errs.append('%s: quantity %r, unit_price_cents %r' % (w, ln['quantity'], ln['unit_price_cents']))
            continue
        total += ln['quantity'] * ln['unit_price_cents']
    if not errs and total != o.get('total_cents'):
        errs.append('%s.total_cents %r is not the sum of the lines (%d)' % (where, o.get('total_cents'), total))
    return errs


def sane_rid(v):
    return v is not None and 0 < len(v) <= 200 and re.fullmatch(r'[\x21-\x7e]+', v) and '"' not in v


def convention_errors(c, r):
    """What every response must satisfy, whatever the case expects."""
    errs = []
    rids = r.all('X-Request-Id')
    if len(rids) != 1:
        errs.append('expected exactly one X-Request-Id, got %r' % rids)
    elif not sane_rid(rids[0]):
        errs.append('X-Request-Id %r is not a sane id' % rids[0])
    method = c['method']
    if r.status >= 400:
        errs += problem_errors(r)
    elif r.status in (204, 304) or method == 'HEAD':
        if r.body:
            errs.append('%d/%s must have no body, got %d bytes' % (r.status, method, len(r.body)))
    elif 200 <= r.status < 300:
        ct = (r.h('Content-Type') or '').lower().replace(' ', '')
        if ct != 'application/json;charset=utf-8':
            errs.append('Content-Type %r, expected application/json; charset=utf-8' % r.h('Content-Type'))
        if r.json is None:
            errs.append('success body is not JSON: %s' % r.json_error)
    if r.status == 401:
        # The webhook is authenticated by its signature, not the bearer token:
        # its challenge names that scheme (RFC 9110: a 401 always has one).
        if c.get('path', '').startswith('/webhooks/'):
            if not (r.h('WWW-Authenticate') or '').strip() or \
                    (r.h('WWW-Authenticate') or '').lower().startswith('bearer'):
                errs.append('a webhook 401 without a WWW-Authenticate challenge of its own (got %r)'
                            % r.h('WWW-Authenticate'))
        elif not (r.h('WWW-Authenticate') or '').lower().startswith('bearer'):
            errs.append('401 without WWW-Authenticate: Bearer (got %r)' % r.h('WWW-Authenticate'))
    if r.status == 405 and not r.h('Allow'):
        errs.append('405 without Allow')
    if r.status == 503 and not r.h('Retry-After'):
        errs.append('503 without Retry-After')
    if r.json is not None:
        errs += timestamp_errors(r.json)
        if is_product(r.json) or is_order(r.json):
            errs += product_errors(r.json) if is_product(r.json) else order_errors(r.json)
            if 200 <= r.status < 300:
                want = '"%s"' % r.json.get('version')
                if r.h('ETag') != want:
                    errs.append('ETag %r, expected %s (the version)' % (r.h('ETag'), want))
        # a list, unless it is an order or a stock check's answer (items per sku)
        if isinstance(r.json, dict) and 'items' in r.json and 200 <= r.status < 300 and not is_order(r.json) \
                and c.get('path', '').split('?')[0] != '/stock/check':
            # GET /warehouses is the one list without pages: {"items":[...]}
            unpaged = c.get('path', '').split('?')[0] == '/warehouses'
            if set(r.json) != ({'items'} if unpaged else {'items', 'next'}):
                errs.append('list keys %s, expected %s' % (sorted(r.json), 'items' if unpaged else 'items and next'))
            nxt = r.json.get('next')
            if not (nxt is None or (isinstance(nxt, str) and nxt)):
                errs.append('next must be null or a non-empty string, got %r' % (nxt,))
            items = r.json.get('items')
            if not isinstance(items, list):
                errs.append('items is not a list')
            else:
                for i, p in enumerate(items):
                    if is_product(p):
                        errs += product_errors(p, 'items[%d]' % i)
                    elif is_order(p):
                        errs += order_errors(p, 'items[%d]' % i)
    return errs


def expect_errors(c, r):
    x = c.get('expect', {})
    errs = []
    want = x.get('status')
    if want is not None and r.status not in (want if isinstance(want, tuple) else (want,)):
        errs.append('status %d, expected %s' % (r.status, want))
    if 'problem' in x:
        errs += [e for e in problem_errors(r, x['problem']) if e.startswith('type')]
    if 'fields' in x:
        got = {e.get('field') for e in (r.json or {}).get('errors', []) if isinstance(e, dict)} \
            if isinstance(r.json, dict) and isinstance(r.json.get('errors'), list) else set()
        for f in x['fields']:
            if f not in got:
                errs.append('errors[] names no field %r (got %s)' % (f, sorted(got)))
    if 'json' in x:
        errs += subset_errors(x['json'], r.json)
    if x.get('empty') and r.body:
        errs.append('expected no body, got %d bytes' % len(r.body))
    for name, v in x.get('headers', {}).items():
        got = r.h(name)
        if got is None:
            errs.append('header %s missing' % name)
        elif v is True:
            pass
        elif callable(v):
            msg = v(got)
            if msg:
                errs.append('header %s: %s' % (name, msg))
        elif got != v:
            errs.append('header %s is %r, expected %r' % (name, got, v))
    for name in x.get('absent', []):
        if r.h(name) is not None:
            errs.append('header %s should be absent, got %r' % (name, r.h(name)))
    if 'allow' in x:
        got = {m.strip().upper() for m in (r.h('Allow') or '').split(',') if m.strip()}
        missing = set(x['allow']) - got
        if missing:
            errs.append('Allow %r lacks %s' % (r.h('Allow'), sorted(missing)))
    if x.get('location'):
        # location=True: a new product; a string: that collection ('/orders/'),
        # followed by the new resource's id (or, with 'code', its code).
        loc = r.h('Location') or ''
        coll = '/products/' if x['location'] is True else x['location']
        key = 'code' if coll == '/warehouses/' else 'id'
        pid = r.json.get(key) if isinstance(r.json, dict) else None
        if not loc.endswith('%s%s' % (coll, pid)):
            errs.append('Location %r does not end with %s%s' % (loc, coll, pid))
    if 'items' in x:
        items = r.json.get('items') if isinstance(r.json, dict) else None
        n = len(items) if isinstance(items, list) else None
        if n != x['items']:
            errs.append('%s items, expected %d' % (n, x['items']))
    if 'max_seconds' in x and r.elapsed > x['max_seconds']:
        errs.append('took %.2f s, expected at most %.1f s' % (r.elapsed, x['max_seconds']))
    return errs


# -------------------------------------------------------------------- runner

class Ctx:
    def __init__(self, tap, tg, token, db, body_limit, vars, webhook_secret=None):
        self.tap, self.tg, self.token, self.db = tap, tg, token, db
        self.body_limit = body_limit
        self.vars = vars
        self.webhook_secret = webhook_secret      # the payment webhook's HMAC secret (str)
        self.answers = []     # (case key, answer_of(...)) of every case run_case ran, for run_case_parity


def encode_body(body):
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode('utf-8')
    return json.dumps(body, ensure_ascii=False).encode('utf-8')


def build(ctx, case):
    """The case with variables substituted, and its request."""
    c = subst(case, ctx.vars)
    if callable(c.get('body')):
        c['body'] = c['body'](ctx)
    headers = []
    auth = c.get('auth')
    if auth is True:
        headers.append(('Authorization', 'Bearer ' + ctx.token))
    body = encode_body(c['body']) if 'body' in c else None
    ctype = c.get('ctype', 'application/json')
    if body is not None and ctype is not NO_CT:
        headers.append(('Content-Type', ctype))
    for k, v in c.get('headers', {}).items():
        headers.append((k, v))
    if c.get('sign') is not None:
        headers.append(('Shop-Signature', signature(ctx, body or b'', c['sign'])))
    return c, headers, body


def webhook_signature(secret, body, t=None):
    """Shop-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>."""
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), str(t).encode() + b'.' + body, hashlib.sha256).hexdigest()
    return 't=%d,v1=%s' % (t, mac)


def signature(ctx, body, how):
    """A case's 'sign': True (now, the right secret) or a dict with 'skew'
    (seconds added to now), 'secret' (another one), 'body' (sign other
    bytes than those sent) or 'header' (send exactly this)."""
    how = {} if how is True else how
    if 'header' in how:
        return how['header']
    if ctx.webhook_secret is None:
        raise Missing('webhook secret (--webhook-secret-file)')
    return webhook_signature(how.get('secret', ctx.webhook_secret), how.get('body', body),
                             int(time.time()) + how.get('skew', 0))


def label(ctx, c):
    path = c['path'] if len(c['path']) <= 60 else c['path'][:57] + '...'
    return '[%s] %s %s: %s' % (ctx.tg.name, c['method'], path, c['name'])


def execute(ctx, case):
    """Sends the case's request; returns (substituted case, Resp) or raises."""
    c, headers, body = build(ctx, case)
    r = send(ctx.tg, c['method'], c['path'], headers, body, chunked=c.get('chunked', False),
             raw_lines=c.get('raw_lines'))
    return c, r


def run_case(ctx, case, extra_check=None):
    """Runs one case and reports it; returns the response (or None)."""
    try:
        c = subst(case, ctx.vars)
    except Missing as e:
        ctx.tap.result('[%s] %s %s: %s' % (ctx.tg.name, case['method'], case['path'], case['name']),
                       ['needs {{%s}}, which an earlier case did not provide' % e])
        return None
    name = label(ctx, c)
    try:
        c, r = execute(ctx, case)
    except Exception as e:         # noqa: BLE001 - any failure to talk is a failed case
        ctx.tap.result(name, ['request failed: %r' % e])
        return None
    errs = convention_errors(c, r) + expect_errors(c, r)
    if 'check' in c:
        try:
            errs += c['check'](r, ctx) or []
        except Exception as e:     # noqa: BLE001
            errs.append('check raised %r' % e)
    if extra_check:
        errs += extra_check(r)
    if not errs:
        for var, how in c.get('save', {}).items():
            try:
                ctx.vars[var] = how(r) if callable(how) else save_value(r, how)
            except (KeyError, TypeError, ValueError) as e:
                errs.append('cannot save %s from %s: %r' % (var, how, e))
    ctx.tap.result(name, errs, [r.summary()] if errs else [])
    ctx.answers.append(('%s %s: %s' % (case['method'], case['path'], case['name']), answer_of(r, ctx.vars['P'])))
    return r


def save_value(r, how):
    kind, key = how.split(':', 1)
    if kind == 'json':
        v = r.json[key]
        if v is None:
            raise ValueError('null')
        return str(v)
    if kind == 'header':
        v = r.h(key)
        if v is None:
            raise KeyError(key)
        return v
    raise ValueError(how)


# ------------------------------------------------------------ case helpers

def get(name, path, **kw):
    return dict(name=name, method='GET', path=path, **kw)


def status(code, **kw):
    return dict(status=code, **kw)


def problem(code, ptype, **kw):
    return dict(status=code, problem=ptype, **kw)


# ---------------------------------------------------------------- sections

def run_table(ctx, table):
    for case in table:
        run_case(ctx, case)


def parallel(n, fn, together=False):
    """fn(0) ... fn(n-1) on n threads; results (or exceptions) in order.
    together: the threads wait for each other before calling fn, so the
    requests leave as close to the same moment as threads allow."""
    out = [None] * n
    gate = threading.Barrier(n) if together else None

    def work(i):
        try:
            if gate is not None:
                gate.wait(30)
            out[i] = fn(i)
        except Exception as e:     # noqa: BLE001
            out[i] = e
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def tally(results):
    counts = {}
    for r in results:
        key = r.status if isinstance(r, Resp) else type(r).__name__
        counts[key] = counts.get(key, 0) + 1
    return counts


UUID_ANY_RE = re.compile(r'[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}')


def normalise(r, P):
    """What parity compares: masked of ids, timestamps, cursors, the run prefix."""
    def mask(v, key=None):
        if isinstance(v, dict):
            return {k: mask(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [mask(x) for x in v]
        if key == 'id' and isinstance(v, int):
            return '<id>'
        if key and key.endswith('_at') and isinstance(v, str):
            return '<time>'
        if key == 'next' and isinstance(v, str):
            return '<cursor>'
        if isinstance(v, str):
            return UUID_ANY_RE.sub('<uuid>', v.replace(P, '<P>'))
        return v
    ptype = r.json.get('type') if isinstance(r.json, dict) and r.status >= 400 else None
    allow = sorted(m.strip() for m in (r.h('Allow') or '').split(',') if m.strip())
    loc = re.sub(r'\d+', '<id>', UUID_ANY_RE.sub('<uuid>', r.h('Location') or ''))
    return {'status': r.status, 'content-type': r.h('Content-Type'), 'etag': r.h('ETag') is not None,
            'problem type': ptype, 'allow': allow, 'location': loc,
            'www-authenticate': r.h('WWW-Authenticate'),
            'body': mask(r.json) if r.json is not None else r.body.decode('utf-8', 'replace')}


# Headers every response may carry with values of its own; hop-by-hop ones.
VOLATILE_HEADERS = {'date', 'x-request-id', 'content-length', 'connection', 'keep-alive', 'transfer-encoding'}


def answer_of(r, P):
    """What run_case_parity compares of one case's answer: what does not
    depend on the data earlier cases left (the targets run one after the
    other on one database): status, header names, the headers that matter,
    and the whole (masked) body of an error."""
    a = normalise(r, P)
    if r.status < 400:
        del a['body']
    loc = (r.h('Location') or '').replace(P, '<P>')
    a['location'] = re.sub(r'/\d+', '/<id>', UUID_ANY_RE.sub('<uuid>', loc))
    a['retry-after'] = r.h('Retry-After') is not None
    a['headers'] = sorted({k.lower() for k, _ in r.headers} - VOLATILE_HEADERS)
    return a


def run_case_parity(tap, ctxs):
    """Every case run_case ran on each target, compared with the first
    target's answer to the same case: any difference is a failure (one
    'not ok' per differing case), else one 'ok' for all of them."""
    if len(ctxs) < 2:
        return
    ref, names = ctxs[0], ' = '.join(c.tg.name for c in ctxs)
    compared, bad = 0, 0
    for other in ctxs[1:]:
        if len(other.answers) != len(ref.answers):
            tap.diag('parity of every case: %s ran %d cases, %s ran %d (compared as far as they match)'
                     % (ref.tg.name, len(ref.answers), other.tg.name, len(other.answers)))
        for (ka, a), (kb, b) in zip(ref.answers, other.answers):
            if ka != kb:
                tap.result('parity of every case: %s and %s ran the same cases' % (ref.tg.name, other.tg.name),
                           ['%s ran %r where %s ran %r' % (ref.tg.name, ka, other.tg.name, kb)])
                bad += 1
                break
            compared += 1
            errs = ['%s: %s=%r, %s=%r' % (k, ref.tg.name, a.get(k), other.tg.name, b.get(k))
                    for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            if errs:
                bad += 1
                tap.result('parity: %s (%s)' % (ka if len(ka) <= 100 else ka[:97] + '...', names), errs)
    if not bad:
        tap.result('parity: every one of the %d cases above gets the same answer from %s '
                   '(status, headers, problem bodies)' % (compared, names), [])


def run_parity(tap, ctxs, table):
    if len(ctxs) < 2:
        tap.skip('parity: the same requests on every front-end give the same answers',
                 'one target only (%s)' % ctxs[0].tg.name)
        return
    for case in table:
        got = {}
        for ctx in ctxs:
            try:
                c, r = execute(ctx, case)
                for var, how in c.get('save', {}).items():
                    ctx.vars[var] = save_value(r, how)
                got[ctx.tg.name] = normalise(r, ctx.vars['P'])
            except Exception as e:     # noqa: BLE001
                got[ctx.tg.name] = {'error': repr(e)}
        names = list(got)
        ref = got[names[0]]
        errs = []
        for n in names[1:]:
            for k in sorted(set(ref) | set(got[n])):
                if ref.get(k) != got[n].get(k):
                    errs.append('%s: %s=%r, %s=%r' % (k, names[0], ref.get(k), n, got[n].get(k)))
        tap.result('parity: %s %s (%s): %s agree' % (case['method'], case['path'], case['name'],
                                                      ' = '.join(names)), errs)
