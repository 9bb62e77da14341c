-- The delivery chart (GET /v1/webhooks/delivery-stats): attempts per hour of one tenant,
-- counted from indexes alone.
--
-- An attempt carries its delivery's environment (it was only on the delivery), so that a
-- tenant's attempts are one index range: every attempt logged from now on states it, and the
-- ones already logged take it from their delivery.
ALTER TABLE delivery_attempts ADD COLUMN environment TEXT NOT NULL DEFAULT 'live';
UPDATE delivery_attempts SET environment = 'test'
 WHERE delivery_id IN (SELECT id FROM deliveries WHERE environment = 'test');
-- Every attempt of a tenant by time (the hour's total), and the failed ones alone (a partial
-- index: a sandbox attempt is recorded as delivered, with error class `sandbox`), so that the
-- failures are counted without reading the successes.
CREATE INDEX delivery_attempts_org_time ON delivery_attempts (org_id, environment, created_at);
CREATE INDEX delivery_attempts_failed ON delivery_attempts (org_id, environment, created_at, error_class)
    WHERE error_class <> 'sandbox';
