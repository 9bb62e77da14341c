-- Delivery attempts counted per endpoint and hour, as they are logged: the delivery chart
-- (GET /v1/webhooks/delivery-stats) and each endpoint's success rate read these few rows
-- instead of counting attempts, so the two indexes 0012 added on every attempt go.
--
-- Succeeded: a 2xx, or in test mode recorded in the sandbox (error class `sandbox`); failed:
-- any other outcome.
CREATE TABLE delivery_hourly (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    hour_start BIGINT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    succeeded BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, hour_start)
);
CREATE INDEX delivery_hourly_tenant ON delivery_hourly (org_id, environment, hour_start);

INSERT INTO delivery_hourly (endpoint_id, hour_start, org_id, environment, succeeded, failed)
SELECT a.endpoint_id, a.created_at / 3600000 * 3600000, MIN(w.org_id), MIN(w.environment),
       CAST(SUM(CASE WHEN a.error_class IS NULL OR a.error_class = 'sandbox' THEN 1 ELSE 0 END) AS BIGINT),
       CAST(SUM(CASE WHEN a.error_class IS NULL OR a.error_class = 'sandbox' THEN 0 ELSE 1 END) AS BIGINT)
  FROM delivery_attempts a JOIN webhook_endpoints w ON w.id = a.endpoint_id
 GROUP BY a.endpoint_id, a.created_at / 3600000 * 3600000;

DROP INDEX delivery_attempts_org_time;
DROP INDEX delivery_attempts_failed;
