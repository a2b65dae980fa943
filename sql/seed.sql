-- Sample data for the demo and the benchmarks: warehouses north/south/east
-- and N products (psql -v n=N, default 1000) with stock in each warehouse.
-- Safe to run twice: rows that exist are left alone.
\if :{?n}
\else
\set n 1000
\endif

INSERT INTO shop.warehouses (code, name) VALUES
    ('north', 'North DC'), ('south', 'South DC'), ('east', 'East DC')
ON CONFLICT (code) DO NOTHING;

INSERT INTO shop.products (sku, slug, name, category, description, price_cents, currency)
SELECT format('SKU-%s', lpad(i::text, 6, '0')),
       format('product-%s', i),
       format('Product %s', i),
       (ARRAY['apparel', 'books', 'garden', 'kitchen', 'toys'])[1 + i % 5],
       format('Seeded product number %s, a plain cotton tee in a sensible colour.', i),
       100 + (i * 37) % 9900,
       'EUR'
FROM generate_series(1, :n) AS i
ORDER BY i
ON CONFLICT DO NOTHING;

-- Quantities 0...59, different per warehouse; about 1 row in 20 is 0.
INSERT INTO shop.stock (warehouse, product_id, quantity)
SELECT w.code, p.id, (p.id * w.k + 7 * w.k) % 60
FROM shop.products p
CROSS JOIN (VALUES ('north', 3), ('south', 7), ('east', 11)) AS w (code, k)
WHERE p.sku LIKE 'SKU-%'
ON CONFLICT DO NOTHING;
