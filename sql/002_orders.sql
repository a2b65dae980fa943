-- 002: orders, their lines, idempotency keys, applied payment events, and
-- the functions that change them. Every HTTP request is one statement: the
-- functions below do the multi-step work in one transaction. They know no
-- state machine: the core passes the states a move may start from and the
-- states from which it returns stock, so the machine lives in one table in C.

CREATE TABLE shop.orders (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,   -- keyset order for lists
    status         text NOT NULL CHECK (status IN ('pending', 'paid', 'packed', 'shipped',
                                                   'delivered', 'cancelled', 'refunded')),
    total_cents    bigint NOT NULL CHECK (total_cents >= 0),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    customer_email text NOT NULL CHECK (char_length(customer_email) BETWEEN 3 AND 254),
    version        integer NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_status_seq_idx ON shop.orders (status, seq);

-- One line per (requested sku, warehouse it was reserved from).
CREATE TABLE shop.order_lines (
    order_id         uuid    NOT NULL REFERENCES shop.orders (id) ON DELETE CASCADE,
    line             integer NOT NULL,
    product_id       bigint  NOT NULL REFERENCES shop.products (id),  -- a product on an order cannot go
    sku              text    NOT NULL,
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_cents bigint  NOT NULL CHECK (unit_price_cents >= 0),
    warehouse        text    NOT NULL REFERENCES shop.warehouses (code),
    PRIMARY KEY (order_id, line)
);
CREATE INDEX order_lines_product_idx ON shop.order_lines (product_id);

CREATE TABLE shop.idempotency_keys (
    key         text PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 200),
    fingerprint text NOT NULL,
    order_id    uuid NOT NULL REFERENCES shop.orders (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop.payment_events (
    id          text PRIMARY KEY CHECK (char_length(id) BETWEEN 1 AND 200),
    fingerprint text NOT NULL,
    order_id    uuid NOT NULL REFERENCES shop.orders (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- An order as the API shows it, for event payloads.
CREATE FUNCTION shop.order_json(p_id uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT row_to_json(x) FROM (
        SELECT o.id, o.status,
               (SELECT coalesce(json_agg(json_build_object('sku', l.sku, 'quantity', l.quantity,
                        'unit_price_cents', l.unit_price_cents, 'warehouse', l.warehouse) ORDER BY l.line),
                        '[]'::json)
                FROM shop.order_lines l WHERE l.order_id = o.id) AS items,
               o.total_cents, o.currency, o.customer_email, o.version,
               shop.ts(o.created_at) AS created_at, shop.ts(o.updated_at) AS updated_at
        FROM shop.orders o WHERE o.id = p_id) x
$$;

-- The rows every order statement returns: the order once per line.
CREATE TYPE shop.order_row AS (
    id uuid, status text, total_cents bigint, currency text, customer_email text,
    version integer, created_at timestamptz, updated_at timestamptz,
    line_sku text, line_quantity integer, line_unit_price_cents bigint, line_warehouse text,
    seq bigint, replayed boolean);

CREATE FUNCTION shop.order_rows(p_id uuid, p_replayed boolean) RETURNS SETOF shop.order_row
LANGUAGE sql STABLE AS $$
    SELECT o.id, o.status, o.total_cents, o.currency, o.customer_email, o.version,
           o.created_at, o.updated_at, l.sku, l.quantity, l.unit_price_cents, l.warehouse,
           o.seq, p_replayed
    FROM shop.orders o JOIN shop.order_lines l ON l.order_id = o.id
    WHERE o.id = p_id
    ORDER BY l.line
$$;

CREATE FUNCTION shop.stock_changed(p_warehouse text, p_product_id bigint, p_quantity integer)
RETURNS void LANGUAGE sql AS $$
    SELECT shop.emit('stock.changed', 'stock', json_build_object(
        'warehouse', p_warehouse,
        'sku', (SELECT sku FROM shop.products WHERE id = p_product_id),
        'quantity', p_quantity))
$$;

-- Places an order: p_skus[i] x p_quantities[i] (distinct skus, checked by the
-- core). Each sku is taken from the warehouses holding the most of it first
-- (ties by code). Stock rows are locked in one global order (product,
-- warehouse), so concurrent orders queue on the rows they share and never
-- deadlock; the CHECK (quantity >= 0) on shop.stock is the second guard.
CREATE FUNCTION shop.place_order(p_skus text[], p_quantities integer[], p_email text,
                                 p_key text, p_fingerprint text)
RETURNS SETOF shop.order_row
LANGUAGE plpgsql AS $$
DECLARE
    v_key      shop.idempotency_keys;
    v_order    uuid;
    v_currency text;
    v_total    bigint := 0;
    v_line     integer := 0;
    v_errors   text := '';
    v_short    text := '';
    v_left     integer;
    v_have     bigint;
    v_take     integer;
    p          record;
    s          record;
BEGIN
    IF p_key IS NOT NULL THEN
        -- Same-key requests queue here, so the second one sees the first's order.
        PERFORM pg_advisory_xact_lock(hashtextextended('shop.idempotency:' || p_key, 0));
        SELECT * INTO v_key FROM shop.idempotency_keys WHERE key = p_key;
        IF FOUND THEN
            IF v_key.fingerprint <> p_fingerprint THEN
                RAISE EXCEPTION 'the Idempotency-Key was already used with a different request'
                    USING ERRCODE = 'SH422',
                          DETAIL = ',"errors":[{"field":"Idempotency-Key","message":"was already used with a different request body"}]';
            END IF;
            RETURN QUERY SELECT * FROM shop.order_rows(v_key.order_id, true);
            RETURN;
        END IF;
    END IF;

    -- The products stay (no delete, no sku change) until commit.
    PERFORM 1 FROM shop.products pr WHERE pr.sku = ANY (p_skus) ORDER BY pr.id FOR KEY SHARE;
    FOR p IN SELECT w.i, w.sku, pr.id AS product_id, pr.currency
             FROM unnest(p_skus) WITH ORDINALITY AS w (sku, i)
             LEFT JOIN shop.products pr ON pr.sku = w.sku
             ORDER BY w.i LOOP
        IF p.product_id IS NULL THEN
            v_errors := v_errors || CASE WHEN v_errors = '' THEN '' ELSE ',' END
                || format('{"field":"items[%s].sku","message":"no such product"}', p.i - 1);
        ELSIF v_currency IS NULL THEN
            v_currency := p.currency;
        ELSIF p.currency <> v_currency THEN
            v_errors := v_errors || CASE WHEN v_errors = '' THEN '' ELSE ',' END
                || format('{"field":"items[%s].sku","message":"all items of an order must share one currency"}', p.i - 1);
        END IF;
    END LOOP;
    IF v_errors <> '' THEN
        RAISE EXCEPTION 'items of the order are invalid'
            USING ERRCODE = 'SH422', DETAIL = ',"errors":[' || v_errors || ']';
    END IF;

    PERFORM 1 FROM shop.stock st JOIN shop.products pr ON pr.id = st.product_id
    WHERE pr.sku = ANY (p_skus)
    ORDER BY st.product_id, st.warehouse FOR UPDATE OF st;

    INSERT INTO shop.orders (status, total_cents, currency, customer_email)
    VALUES ('pending', 0, v_currency, p_email)
    RETURNING id INTO v_order;

    FOR p IN SELECT w.i, w.sku, w.qty, pr.id AS product_id, pr.price_cents AS price
             FROM unnest(p_skus, p_quantities) WITH ORDINALITY AS w (sku, qty, i)
             JOIN shop.products pr ON pr.sku = w.sku
             ORDER BY w.i LOOP
        SELECT coalesce(sum(quantity), 0) INTO v_have FROM shop.stock WHERE product_id = p.product_id;
        IF v_have < p.qty THEN
            v_short := v_short || CASE WHEN v_short = '' THEN '' ELSE ',' END
                || format('{"sku":%s,"requested":%s,"available":%s}', to_json(p.sku), p.qty, v_have);
            CONTINUE;
        END IF;
        v_left := p.qty;
        FOR s IN SELECT warehouse, quantity FROM shop.stock
                 WHERE product_id = p.product_id AND quantity > 0
                 ORDER BY quantity DESC, warehouse LOOP
            EXIT WHEN v_left = 0;
            v_take := least(v_left, s.quantity);
            v_left := v_left - v_take;
            UPDATE shop.stock SET quantity = quantity - v_take
            WHERE product_id = p.product_id AND warehouse = s.warehouse;
            PERFORM shop.stock_changed(s.warehouse, p.product_id, s.quantity - v_take);
            v_line := v_line + 1;
            INSERT INTO shop.order_lines (order_id, line, product_id, sku, quantity, unit_price_cents, warehouse)
            VALUES (v_order, v_line, p.product_id, p.sku, v_take, p.price, s.warehouse);
            v_total := v_total + v_take::bigint * p.price;
        END LOOP;
    END LOOP;
    IF v_short <> '' THEN
        RAISE EXCEPTION 'not enough stock for some items'
            USING ERRCODE = 'SHSTK', DETAIL = ',"items":[' || v_short || ']';
    END IF;

    UPDATE shop.orders SET total_cents = v_total WHERE id = v_order;
    IF p_key IS NOT NULL THEN
        INSERT INTO shop.idempotency_keys (key, fingerprint, order_id)
        VALUES (p_key, p_fingerprint, v_order);
    END IF;
    PERFORM shop.emit('order.created', 'orders', shop.order_json(v_order));
    RETURN QUERY SELECT * FROM shop.order_rows(v_order, false);
END
$$;

-- Moves an order to p_to if its status is one of p_from (compare-and-set
-- under the row lock) and its version one of p_versions (NULL: any). From a
-- status in p_restock_from, each line's units go back to their warehouse.
CREATE FUNCTION shop.transition_order(p_id uuid, p_to text, p_from text[],
                                      p_restock_from text[], p_versions integer[])
RETURNS SETOF shop.order_row
LANGUAGE plpgsql AS $$
DECLARE
    o shop.orders;
    l record;
    v_qty integer;
BEGIN
    SELECT * INTO o FROM shop.orders WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such order' USING ERRCODE = 'SH404';
    END IF;
    IF p_versions IS NOT NULL AND NOT (o.version = ANY (p_versions)) THEN
        RAISE EXCEPTION 'If-Match does not match the current version' USING ERRCODE = 'SH412';
    END IF;
    IF NOT (o.status = ANY (p_from)) THEN
        -- The core lists the allowed moves from the status named in DETAIL.
        RAISE EXCEPTION 'the order cannot move from % to %', o.status, p_to
            USING ERRCODE = 'SHTRN', DETAIL = o.status;
    END IF;
    IF o.status = ANY (p_restock_from) THEN
        FOR l IN SELECT product_id, warehouse, sum(quantity) AS quantity FROM shop.order_lines
                 WHERE order_id = p_id GROUP BY product_id, warehouse
                 ORDER BY product_id, warehouse LOOP
            UPDATE shop.stock SET quantity = quantity + l.quantity
            WHERE product_id = l.product_id AND warehouse = l.warehouse
            RETURNING quantity INTO v_qty;
            IF NOT FOUND THEN
                INSERT INTO shop.stock (warehouse, product_id, quantity)
                VALUES (l.warehouse, l.product_id, l.quantity)
                RETURNING quantity INTO v_qty;
            END IF;
            PERFORM shop.stock_changed(l.warehouse, l.product_id, v_qty);
        END LOOP;
    END IF;
    UPDATE shop.orders SET status = p_to, version = version + 1, updated_at = now()
    WHERE id = p_id;
    PERFORM shop.emit('order.status_changed', 'orders', json_build_object(
        'id', p_id, 'from', o.status, 'to', p_to, 'version', o.version + 1));
    RETURN QUERY SELECT * FROM shop.order_rows(p_id, false);
END
$$;

-- A payment provider's event: idempotent by event id. The first delivery
-- checks amount and currency against the order and makes the move; a retry
-- with the same content returns the order as it is now and changes nothing.
CREATE FUNCTION shop.apply_payment_event(p_event_id text, p_fingerprint text, p_order_id uuid,
                                         p_to text, p_from text[], p_restock_from text[],
                                         p_amount_cents bigint, p_currency text)
RETURNS SETOF shop.order_row
LANGUAGE plpgsql AS $$
DECLARE
    e shop.payment_events;
    o shop.orders;
    v_errors text := '';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('shop.payment:' || p_event_id, 0));
    SELECT * INTO e FROM shop.payment_events WHERE id = p_event_id;
    IF FOUND THEN
        IF e.fingerprint <> p_fingerprint THEN
            RAISE EXCEPTION 'the event id was already used for a different event'
                USING ERRCODE = 'SH422',
                      DETAIL = ',"errors":[{"field":"id","message":"was already used for a different event"}]';
        END IF;
        RETURN QUERY SELECT * FROM shop.order_rows(e.order_id, true);
        RETURN;
    END IF;
    -- Lock the order before the payment_events row's foreign key takes its
    -- share lock: upgrading that later deadlocks concurrent events.
    SELECT * INTO o FROM shop.orders WHERE id = p_order_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such order' USING ERRCODE = 'SH404';
    END IF;
    IF p_amount_cents IS NOT NULL AND p_amount_cents <> o.total_cents THEN
        v_errors := '{"field":"amount_cents","message":"does not match the order total"}';
    END IF;
    IF p_currency IS NOT NULL AND p_currency <> o.currency THEN
        v_errors := v_errors || CASE WHEN v_errors = '' THEN '' ELSE ',' END
            || '{"field":"currency","message":"does not match the order currency"}';
    END IF;
    IF v_errors <> '' THEN
        RAISE EXCEPTION 'the event does not match the order'
            USING ERRCODE = 'SH422', DETAIL = ',"errors":[' || v_errors || ']';
    END IF;
    INSERT INTO shop.payment_events (id, fingerprint, order_id)
    VALUES (p_event_id, p_fingerprint, p_order_id);
    RETURN QUERY SELECT * FROM shop.transition_order(p_order_id, p_to, p_from, p_restock_from, NULL);
END
$$;

CREATE FUNCTION shop.put_warehouse(p_code text, p_name text, p_latency_ms integer)
RETURNS TABLE (code text, name text, latency_ms integer, created boolean)
LANGUAGE sql AS $$
    INSERT INTO shop.warehouses AS w (code, name, latency_ms)
    VALUES (p_code, p_name, p_latency_ms)
    ON CONFLICT (code) DO UPDATE
        SET name = excluded.name,
            latency_ms = excluded.latency_ms,
            updated_at = now()
    RETURNING w.code, w.name, w.latency_ms, (xmax = 0) AS created
$$;

CREATE FUNCTION shop.put_stock(p_warehouse text, p_sku text, p_quantity integer)
RETURNS TABLE (warehouse text, sku text, quantity integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_product bigint;
    v_old integer;
BEGIN
    PERFORM 1 FROM shop.warehouses w WHERE w.code = p_warehouse;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such warehouse' USING ERRCODE = 'SH404';
    END IF;
    SELECT id INTO v_product FROM shop.products WHERE shop.products.sku = p_sku;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such sku' USING ERRCODE = 'SH404';
    END IF;
    SELECT s.quantity INTO v_old FROM shop.stock s
    WHERE s.product_id = v_product AND s.warehouse = p_warehouse FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO shop.stock (warehouse, product_id, quantity) VALUES (p_warehouse, v_product, p_quantity);
    ELSIF v_old <> p_quantity THEN
        UPDATE shop.stock s SET quantity = p_quantity
        WHERE s.product_id = v_product AND s.warehouse = p_warehouse;
    END IF;
    IF v_old IS DISTINCT FROM p_quantity THEN
        PERFORM shop.stock_changed(p_warehouse, v_product, p_quantity);
    END IF;
    RETURN QUERY SELECT p_warehouse, p_sku, p_quantity;
END
$$;
