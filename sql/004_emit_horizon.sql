-- 004: shop.emit's horizon must exceed the xid of every transaction that
-- drew a smaller event id. 001 used the snapshot's xmax, which is only
-- latestCompletedXid + 1: a transaction that took its xid and drew id N but
-- has not committed yet can have an xid >= that xmax, so the row with id
-- N + 1 was "ready" while N was still to come, and readers skipped N for
-- good (seen with 4 concurrent writers: 5 of 1000 events lost).
--
-- The fix: after drawing the id, the row is inserted in a subtransaction.
-- Its xid (the row's xmin) is assigned then, so it is larger than every xid
-- assigned before the draw, in any session; the horizon is that xid + 1. The
-- readers' test (horizon <= the snapshot's xmin) is unchanged.
CREATE OR REPLACE FUNCTION shop.emit(p_type text, p_topic text, p_data json) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_id   bigint;
    v_top  bigint;
    v_sub  bigint;
    v_full bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'shop.emit needs READ COMMITTED';
    END IF;
    -- Own an xid before drawing the id: whoever draws a larger id later
    -- then gets a subtransaction xid above ours.
    v_top := pg_current_xact_id()::text::bigint;
    v_id := nextval('shop.events_id_seq');
    BEGIN
        INSERT INTO shop.events (id, type, topic, data, horizon)
        VALUES (v_id, p_type, p_topic, p_data, '0')
        RETURNING xmin::text::bigint INTO v_sub;
    EXCEPTION WHEN OTHERS THEN
        RAISE;
    END;
    -- xmin is 32 bits: put it in the epoch of our top-level xid (it was
    -- assigned later, so it is at or after it, possibly one epoch on).
    v_full := ((v_top >> 32) << 32) | v_sub;
    IF v_full < v_top THEN
        v_full := v_full + 4294967296;
    END IF;
    UPDATE shop.events SET horizon = (v_full + 1)::text::xid8 WHERE id = v_id;
    PERFORM pg_notify('shop_events', v_id::text);
    RETURN v_id;
END
$$;
