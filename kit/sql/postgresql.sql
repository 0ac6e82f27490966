-- Tables used by the headrace Windmill kit (f/dodo/*), PostgreSQL 13+.
-- Apply once: psql "$DATABASE_URL" -f kit/sql/postgresql.sql   (idempotent: IF NOT EXISTS everywhere)
-- Amounts are integers in the currency's minor unit; currency_exponent says how many decimals
-- that unit has (0 JPY, 2 USD, 3 KWD), so no amount is ever stored as a float.

-- One row per Dodo customer; an older event never overwrites newer contact details.
CREATE TABLE IF NOT EXISTS dodo_customers (
    customer_id    text PRIMARY KEY,
    email          text,
    name           text,
    phone_number   text,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every payment, refund, dispute event and manual adjustment, once: the webhook id is the key,
-- so a redelivered or replayed event inserts nothing.
CREATE TABLE IF NOT EXISTS dodo_ledger (
    webhook_id         text PRIMARY KEY,
    event_type         text NOT NULL,           -- payment.succeeded, refund.succeeded, dispute.lost, adjustment, ...
    kind               text NOT NULL CHECK (kind IN ('payment', 'refund', 'dispute', 'adjustment')),
    object_id          text NOT NULL,           -- payment_id, refund_id, dispute_id or adjustment id
    payment_id         text,
    customer_id        text,
    status             text,
    currency           text NOT NULL,
    currency_exponent  smallint NOT NULL,
    amount_minor       bigint NOT NULL,         -- positive; adjustments carry their sign
    occurred_at        timestamptz NOT NULL,    -- the event time (Dodo body `timestamp`)
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS dodo_ledger_occurred_at ON dodo_ledger (occurred_at);
CREATE INDEX IF NOT EXISTS dodo_ledger_payment_id ON dodo_ledger (payment_id);

-- Which subscriptions each payment starts or charges: one row per (payment, subscription), so a
-- multi-subscription payment (Dodo's `subscription_ids`) is linked to every one of them.
CREATE TABLE IF NOT EXISTS dodo_payment_subscriptions (
    payment_id       text NOT NULL,
    subscription_id  text NOT NULL,
    webhook_id       text NOT NULL,           -- the first event that linked them
    linked_at        timestamptz NOT NULL,    -- that event's time
    PRIMARY KEY (payment_id, subscription_id)
);
CREATE INDEX IF NOT EXISTS dodo_payment_subscriptions_subscription_id ON dodo_payment_subscriptions (subscription_id);

-- Latest known state per subscription. last_event_at/last_webhook_id order the events: an update
-- is applied only when it is newer, so out-of-order and repeated deliveries cannot roll it back.
CREATE TABLE IF NOT EXISTS dodo_subscriptions (
    subscription_id              text PRIMARY KEY,
    customer_id                  text,
    product_id                   text,
    status                       text NOT NULL,
    quantity                     integer NOT NULL DEFAULT 1,
    currency                     text NOT NULL,
    currency_exponent            smallint NOT NULL,
    amount_minor                 bigint NOT NULL,  -- recurring pre-tax amount per billing period
    billing_interval             text NOT NULL,    -- Day, Week, Month, Year
    billing_interval_count       integer NOT NULL DEFAULT 1,
    next_billing_date            timestamptz,
    cancel_at_next_billing_date  boolean NOT NULL DEFAULT false,
    cancelled_at                 timestamptz,
    started_at                   timestamptz NOT NULL,
    ended_at                     timestamptz,      -- set when it reaches cancelled, expired or failed
    last_event_type              text NOT NULL,
    last_event_at                timestamptz NOT NULL,
    last_webhook_id              text NOT NULL,
    updated_at                   timestamptz NOT NULL DEFAULT now()
);

-- Every subscription event, once (history for churn and new-subscription counts).
CREATE TABLE IF NOT EXISTS dodo_subscription_events (
    webhook_id         text PRIMARY KEY,
    subscription_id    text NOT NULL,
    event_type         text NOT NULL,
    status             text,
    currency           text NOT NULL,
    currency_exponent  smallint NOT NULL,
    amount_minor       bigint NOT NULL,
    occurred_at        timestamptz NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dodo_subscription_events_occurred_at ON dodo_subscription_events (occurred_at);

-- Stock on hand per Dodo product id (fill it yourself); f/dodo/inventory_decrement lowers it.
CREATE TABLE IF NOT EXISTS dodo_inventory (
    product_id  text PRIMARY KEY,
    on_hand     integer NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One movement per (payment, product): a payment decrements stock once, however often it arrives.
CREATE TABLE IF NOT EXISTS dodo_inventory_movements (
    payment_id   text NOT NULL,
    product_id   text NOT NULL,
    quantity     integer NOT NULL,
    webhook_id   text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (payment_id, product_id)
);

-- One row per day and currency, recomputed from the ledger and subscription events (idempotent).
CREATE TABLE IF NOT EXISTS dodo_daily_metrics (
    day                    date NOT NULL,
    currency               text NOT NULL,
    currency_exponent      smallint NOT NULL,
    gross_minor            bigint NOT NULL,
    refunds_minor          bigint NOT NULL,
    dispute_losses_minor   bigint NOT NULL,
    adjustments_minor      bigint NOT NULL,
    net_minor              bigint NOT NULL,
    payments_count         integer NOT NULL,
    refunds_count          integer NOT NULL,
    new_subscriptions      integer NOT NULL,
    churned_subscriptions  integer NOT NULL,
    computed_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, currency)
);

-- Every Dodo payout (money Dodo sends to your bank), latest state. last_event_at/last_webhook_id order the
-- events as for subscriptions: a late payout.in_progress never rolls a paid payout back. Amounts are in the
-- payout currency's minor unit; fee, tax, refunds and chargebacks are what Dodo deducted.
CREATE TABLE IF NOT EXISTS dodo_payouts (
    payout_id            text PRIMARY KEY,
    status               text NOT NULL,            -- not_initiated, in_progress, on_hold, failed, success
    name                 text,
    currency             text NOT NULL,
    currency_exponent    smallint NOT NULL,
    amount_minor         bigint NOT NULL,
    fee_minor            bigint,
    tax_minor            bigint,
    refunds_minor        bigint,
    chargebacks_minor    bigint,
    payment_method       text,
    payout_document_url  text,
    remarks              text,
    created_at           timestamptz NOT NULL,
    paid_at              timestamptz,               -- the time of payout.success
    last_event_type      text NOT NULL,
    last_event_at        timestamptz NOT NULL,
    last_webhook_id      text NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Every payout event, once (the payout's history).
CREATE TABLE IF NOT EXISTS dodo_payout_events (
    webhook_id    text PRIMARY KEY,
    payout_id     text NOT NULL,
    event_type    text NOT NULL,
    status        text,
    amount_minor  bigint NOT NULL,
    currency      text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dodo_payout_events_payout_id ON dodo_payout_events (payout_id);

-- One row per message the kit sends about an event (license key email, dunning notice, checkout recovery
-- email, low-credit alert). The key says what must not be sent twice: a redelivered or replayed event finds
-- its row and sends nothing. The row is written in the same transaction as the send: a failed send leaves
-- no row, so the retry sends.
CREATE TABLE IF NOT EXISTS dodo_notifications (
    dedupe_key   text PRIMARY KEY,   -- license_key:<id>, dunning:<webhook id>, checkout_recovery:<payment id>, ...
    kind         text NOT NULL,
    webhook_id   text NOT NULL,
    customer_id  text,
    recipient    text NOT NULL,      -- the email address or Slack channel
    sent_at      timestamptz NOT NULL DEFAULT now()
);

-- Every credit event, once: the credit ledger entries (added, deducted, expired, ...) and low-balance alerts.
-- Credits are units of a credit entitlement, not money; they are stored exactly as Dodo's decimal text.
CREATE TABLE IF NOT EXISTS dodo_credit_events (
    webhook_id             text PRIMARY KEY,
    event_type             text NOT NULL,
    customer_id            text NOT NULL,
    credit_entitlement_id  text NOT NULL,
    entry_id               text,              -- null for credit.balance_low
    transaction_type       text,
    amount                 numeric,
    balance_after          numeric,           -- balance_low: the available balance
    occurred_at            timestamptz NOT NULL,
    metadata               jsonb NOT NULL DEFAULT '{}'::jsonb,
    recorded_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dodo_credit_events_customer ON dodo_credit_events (customer_id, credit_entitlement_id);

-- Every entitlement grant (what a purchase unlocked: a license key, files, a Discord or GitHub access, ...),
-- latest state, ordered by event time like payouts; and each grant event once.
CREATE TABLE IF NOT EXISTS dodo_entitlement_grants (
    grant_id           text PRIMARY KEY,
    entitlement_id     text NOT NULL,
    integration_type   text NOT NULL,
    status             text NOT NULL,          -- Pending, Delivered, Failed, Revoked
    customer_id        text NOT NULL,
    payment_id         text,
    subscription_id    text,
    license_key_id     text,
    delivered_at       timestamptz,
    revoked_at         timestamptz,
    revocation_reason  text,
    error_code         text,
    error_message      text,
    created_at         timestamptz NOT NULL,
    last_event_type    text NOT NULL,
    last_event_at      timestamptz NOT NULL,
    last_webhook_id    text NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS dodo_entitlement_grant_events (
    webhook_id   text PRIMARY KEY,
    grant_id     text NOT NULL,
    event_type   text NOT NULL,
    status       text,
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
