-- Orders, their lines and the outbox of confirmations.
CREATE TABLE orders (
    id              TEXT        NOT NULL PRIMARY KEY,
    message_id      TEXT        NOT NULL,
    attachment_hash TEXT        NOT NULL,
    attachment_name TEXT        NOT NULL,
    customer        TEXT        NOT NULL,
    customer_name   TEXT        NOT NULL DEFAULT '',
    customer_ref    TEXT        NOT NULL DEFAULT '',
    reference       TEXT        NOT NULL DEFAULT '',
    subject         TEXT        NOT NULL DEFAULT '',
    total_cents     BIGINT      NOT NULL,
    line_count      INTEGER     NOT NULL,
    audit           TEXT[]      NOT NULL DEFAULT '{}',
    mail_date       TIMESTAMPTZ,
    received_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (message_id, attachment_hash)
);

CREATE INDEX orders_received_at ON orders (received_at DESC, id);

CREATE TABLE order_lines (
    order_id         TEXT    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL,
    source_line      INTEGER NOT NULL,
    sku              TEXT    NOT NULL,
    quantity         BIGINT  NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT  NOT NULL CHECK (unit_price_cents >= 0),
    total_cents      BIGINT  NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE outbox (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id   TEXT        NOT NULL UNIQUE REFERENCES orders (id) ON DELETE CASCADE,
    kind       TEXT        NOT NULL,
    recipient  TEXT        NOT NULL,
    subject    TEXT        NOT NULL,
    body       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at    TIMESTAMPTZ
);

CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;
