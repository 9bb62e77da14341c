-- Conversations, messages, scheduled messages.
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    channel TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX conversations_org ON conversations (org_id, environment, id);
CREATE INDEX conversations_contact ON conversations (contact_id);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    direction TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    -- NULL once erased (GDPR): the row stays for audit and counts.
    body TEXT,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'received')),
    delivery_id TEXT,
    scheduled_message_id TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    sent_at BIGINT,
    erased_at BIGINT
);
CREATE INDEX messages_org ON messages (org_id, environment, id);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
CREATE INDEX messages_delivery ON messages (delivery_id);

CREATE TABLE scheduled_messages (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    body TEXT,
    metadata TEXT NOT NULL,
    send_at BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'dispatching', 'dispatched', 'canceled', 'failed')),
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires_at BIGINT,
    message_id TEXT,
    last_error TEXT,
    -- Set while a replay of this item's dead letter is under way.
    dead_letter_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    dispatched_at BIGINT
);
CREATE INDEX scheduled_messages_due ON scheduled_messages (status, send_at);
CREATE INDEX scheduled_messages_org ON scheduled_messages (org_id, environment, id);
