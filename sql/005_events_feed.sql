-- 005: the event feed costs writers one row, and a resume is bounded.
--
-- Writers. shop.emit takes the transaction's xid (if it has none yet), draws
-- the id and inserts the row: no subtransaction, no second write of the
-- row, and no NOTIFY when the shop's front-ends wrote it (they set
-- shop.wakeup = deferred on their connections and wake every hub after the
-- commit, at most once per read of their own hub: shop.events_read's
-- p_announce). Other writers (psql, scripts) still notify.
--
-- Readers. The ordering guarantee (a reader never hands out id N while a
-- smaller id may still commit) moves from the writer to the reader, as a
-- mark: the last id drawn so far, read from the sequence, and then an xid
-- of the reader's own. Every writer owned its xid before it drew its id,
-- so every transaction that drew an id up to the mark holds an xid below
-- the mark's xid. Once a snapshot's xmin reaches the mark's xid, all of
-- them have ended, and every id up to the mark is settled: committed and
-- visible to any later snapshot, or never to be. The reader hands out the
-- rows up to the settled bound; a mark that is not settled yet is kept and
-- looked at again a few milliseconds later (the front-ends' back-off).
-- A reader's xid costs nothing durable: its commit is asynchronous.
ALTER TABLE shop.events DROP COLUMN horizon;

CREATE OR REPLACE FUNCTION shop.emit(p_type text, p_topic text, p_data json) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_id  bigint;
    v_xid xid8;
BEGIN
    -- Readers hand ids out in order, so a transaction holding an id holds
    -- back every later event until it ends: one that writes events may not
    -- run longer than 2 s (the API's take milliseconds; a bulk load writes
    -- its events in batches of short transactions).
    IF clock_timestamp() - now() > interval '2 seconds' THEN
        RAISE EXCEPTION 'a transaction that writes events must end within 2 s; this one ran %',
            clock_timestamp() - now() USING ERRCODE = 'query_canceled';
    END IF;
    v_xid := pg_current_xact_id();         -- own an xid before drawing the id
    v_id := nextval('shop.events_id_seq');
    INSERT INTO shop.events (id, type, topic, data) VALUES (v_id, p_type, p_topic, p_data);
    IF current_setting('shop.wakeup', true) IS DISTINCT FROM 'deferred' THEN
        -- one per transaction: PostgreSQL folds equal notifications
        PERFORM pg_notify('shop_events', '');
    END IF;
    RETURN v_id;
END
$$;

-- What writers pay besides the row: the payloads. SQL functions with a
-- FROM clause are planned again at every call; an expression without one
-- is inlined into its caller, and PL/pgSQL keeps its plans per session.
CREATE OR REPLACE FUNCTION shop.product_json(p shop.products) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', p.id, 'sku', p.sku, 'slug', p.slug, 'name', p.name,
        'category', p.category, 'description', p.description, 'price_cents', p.price_cents,
        'currency', p.currency, 'version', p.version,
        'created_at', shop.ts(p.created_at), 'updated_at', shop.ts(p.updated_at))
$$;

CREATE OR REPLACE FUNCTION shop.order_json(p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v json;
BEGIN
    SELECT row_to_json(x) INTO v FROM (
        SELECT o.id, o.status,
               (SELECT coalesce(json_agg(json_build_object('sku', l.sku, 'quantity', l.quantity,
                        'unit_price_cents', l.unit_price_cents, 'warehouse', l.warehouse) ORDER BY l.line),
                        '[]'::json)
                FROM shop.order_lines l WHERE l.order_id = o.id) AS items,
               o.total_cents, o.currency, o.customer_email, o.version,
               shop.ts(o.created_at) AS created_at, shop.ts(o.updated_at) AS updated_at
        FROM shop.orders o WHERE o.id = p_id) x;
    RETURN v;
END
$$;

-- A derived slug that is taken gets -2, -3, ...: ON CONFLICT finds out,
-- waiting for a concurrent create of the same slug to end, so no advisory
-- lock is taken on every create. The event id is drawn through an
-- assignment: a plain expression, not a query as PERFORM is.
CREATE OR REPLACE FUNCTION shop.product_create(p_sku text, p_slug text, p_slug_derived boolean,
    p_name text, p_category text, p_description text, p_price_cents bigint, p_currency text)
RETURNS SETOF shop.products
LANGUAGE plpgsql AS $$
DECLARE
    r       shop.products;
    v_slug  text := p_slug;
    n       integer := 1;
    v_event bigint;
BEGIN
    LOOP
        INSERT INTO shop.products (sku, slug, name, category, description, price_cents, currency)
        VALUES (p_sku, v_slug, p_name, p_category, p_description, p_price_cents, p_currency)
        ON CONFLICT (slug) DO NOTHING
        RETURNING * INTO r;
        EXIT WHEN r.id IS NOT NULL;
        IF NOT p_slug_derived THEN
            RAISE EXCEPTION 'the slug is taken'
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'products_slug_key';
        END IF;
        n := n + 1;
        v_slug := left(p_slug, 100 - length(n::text) - 1) || '-' || n;
    END LOOP;
    v_event := shop.emit('product.created', 'products', shop.product_json(r));
    RETURN NEXT r;
END
$$;

-- A public event: which sku, warehouse and level, never which order.
CREATE OR REPLACE FUNCTION shop.stock_changed(p_warehouse text, p_product_id bigint, p_quantity integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_event bigint;
BEGIN
    v_event := shop.emit('stock.changed', 'stock', json_build_object(
        'warehouse', p_warehouse,
        'sku', (SELECT p.sku FROM shop.products p WHERE p.id = p_product_id),
        'quantity', p_quantity));
END
$$;

-- One read of the feed. The caller keeps (p_final, p_mark, p_mark_xid)
-- from the previous call's state row: p_final, every id up to it settled
-- (NULL: not known yet); p_mark/p_mark_xid, a mark not settled yet (NULL:
-- none). The first row is the new state (event columns NULL); the events
-- in (p_after, final] follow, oldest first, at most p_batch (p_after NULL:
-- none, the caller only wants to know where the feed is). p_announce
-- wakes the other processes' hubs at this transaction's commit.
CREATE FUNCTION shop.events_read(p_after bigint, p_batch integer, p_final bigint,
                                 p_mark bigint, p_mark_xid xid8, p_announce boolean)
RETURNS TABLE (id bigint, type text, topic text, data json, created_at timestamptz,
               final bigint, mark bigint, mark_xid xid8)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_final bigint := p_final;
    v_mark  bigint := p_mark;
    v_xid   xid8 := p_mark_xid;
    v_drawn bigint;
BEGIN
    -- Each statement below must see a snapshot of its own.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'shop.events_read needs READ COMMITTED';
    END IF;
    IF v_mark IS NOT NULL AND pg_snapshot_xmin(pg_current_snapshot()) >= v_xid THEN
        v_final := greatest(v_final, v_mark);
        v_mark := NULL;
        v_xid := NULL;
    END IF;
    IF v_mark IS NULL THEN
        v_drawn := coalesce(pg_sequence_last_value('shop.events_id_seq'), 0);
        IF v_final IS NULL OR v_drawn > v_final THEN
            v_xid := pg_current_xact_id();
            PERFORM set_config('synchronous_commit', 'off', true);
            v_mark := v_drawn;
            -- Our own xid counts in xmin: equal means nobody older runs.
            IF pg_snapshot_xmin(pg_current_snapshot()) >= v_xid THEN
                v_final := v_drawn;
                v_mark := NULL;
                v_xid := NULL;
            END IF;
        END IF;
    END IF;
    IF p_announce THEN
        PERFORM pg_notify('shop_events', '');
    END IF;
    RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, NULL::json, NULL::timestamptz,
                        v_final, v_mark, v_xid;
    IF p_after IS NOT NULL AND v_final > p_after THEN
        RETURN QUERY SELECT e.id, e.type, e.topic, e.data, e.created_at,
                            NULL::bigint, NULL::bigint, NULL::xid8
                     FROM shop.events e WHERE e.id > p_after AND e.id <= v_final
                     ORDER BY e.id LIMIT p_batch;
    END IF;
END
$$;

-- Retention: the highest id pruned so far. A resume point below it missed
-- events that are gone.
CREATE TABLE shop.events_pruned (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    through bigint NOT NULL
);
INSERT INTO shop.events_pruned (through) VALUES (0);

-- Deletes at most p_limit events older than p_older_ms milliseconds; SKIP
-- LOCKED lets several processes prune at once without waiting.
CREATE FUNCTION shop.events_prune(p_older_ms bigint, p_limit integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count bigint;
    v_max   bigint;
BEGIN
    WITH d AS (
        DELETE FROM shop.events WHERE id IN (
            SELECT e.id FROM shop.events e
            WHERE e.created_at < clock_timestamp() - p_older_ms * interval '1 millisecond'
            ORDER BY e.id LIMIT p_limit FOR UPDATE SKIP LOCKED)
        RETURNING id)
    SELECT count(*), max(d.id) INTO v_count, v_max FROM d;
    IF v_max IS NOT NULL THEN
        UPDATE shop.events_pruned SET through = greatest(through, v_max);
    END IF;
    RETURN v_count;
END
$$;

-- One batch of a stream's replay: the events in (p_after, p_upto], oldest
-- first, at most p_batch; p_upto is a bound the caller's hub has settled.
-- The first row is a state row (event columns NULL): next_id, the first id
-- the stream may send, and reset. With p_replay_limit set (the first batch
-- of a resume), the resume point is checked: more than p_replay_limit
-- events after it, events older than p_retention_ms, or events already
-- pruned after it make a reset, and the replay starts at next_id.
CREATE FUNCTION shop.events_replay(p_after bigint, p_upto bigint, p_batch integer,
                                   p_replay_limit integer, p_retention_ms bigint)
RETURNS TABLE (id bigint, type text, topic text, data json, created_at timestamptz,
               next_id bigint, reset boolean)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_from  bigint := p_after;
    v_reset boolean := false;
    v_first bigint;
    v_start bigint;
BEGIN
    IF p_replay_limit IS NOT NULL THEN
        SELECT e.id INTO v_first FROM shop.events e
        WHERE e.id > p_after AND e.id <= p_upto ORDER BY e.id LIMIT 1;
        -- The newest p_replay_limit at most: an index scan of that many.
        SELECT min(t.id) INTO v_start FROM (
            SELECT e.id FROM shop.events e WHERE e.id > p_after AND e.id <= p_upto
            ORDER BY e.id DESC LIMIT p_replay_limit) t;
        -- Of those, none older than the retention (not pruned yet).
        SELECT e.id INTO v_start FROM shop.events e
        WHERE e.id >= v_start AND e.id <= p_upto
          AND e.created_at >= clock_timestamp() - p_retention_ms * interval '1 millisecond'
        ORDER BY e.id LIMIT 1;
        v_start := coalesce(v_start, p_upto + 1);
        v_reset := (SELECT p.through FROM shop.events_pruned p) > p_after
                   OR v_start > coalesce(v_first, p_upto + 1);
        IF v_reset THEN
            v_from := v_start - 1;
        END IF;
    END IF;
    RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, NULL::json, NULL::timestamptz,
                        v_from + 1, v_reset;
    RETURN QUERY SELECT e.id, e.type, e.topic, e.data, e.created_at, NULL::bigint, NULL::boolean
                 FROM shop.events e WHERE e.id > v_from AND e.id <= p_upto
                 ORDER BY e.id LIMIT p_batch;
END
$$;
