-- 003: the stock check's per-warehouse statement waits the warehouse's
-- latency_ms first, simulating a remote warehouse system (API.md).
CREATE FUNCTION shop.warehouse_delay(p_code text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_ms integer;
BEGIN
    SELECT latency_ms INTO v_ms FROM shop.warehouses WHERE code = p_code;
    IF v_ms > 0 THEN
        PERFORM pg_sleep(v_ms / 1000.0);
    END IF;
END
$$;
