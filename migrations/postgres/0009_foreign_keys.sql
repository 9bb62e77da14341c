-- Both stores enforce the same integrity: the foreign keys migration 0008 dropped on Postgres
-- come back (SQLite kept them). Their cost (a parent lookup and a FOR KEY SHARE lock per
-- inserted row) is measured in docs/BENCHMARKS.md, "Foreign keys".
ALTER TABLE events ADD CONSTRAINT events_org_id_fkey FOREIGN KEY (org_id) REFERENCES orgs (id);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_org_id_fkey FOREIGN KEY (org_id) REFERENCES orgs (id);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES webhook_endpoints (id);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id);
ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES deliveries (id);
ALTER TABLE messages ADD CONSTRAINT messages_org_id_fkey FOREIGN KEY (org_id) REFERENCES orgs (id);
ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES conversations (id);
