-- weir sinks: the tables fed by the Postgres sink, and the offsets stored with them.
-- Applied by node-pg-migrate in one transaction, with search_path set to the sink's schema.
-- Rows are keyed by deterministic ids, so a replay converges to the same tables.
-- Money and quantities are NUMERIC at the Avro scale of their field (schemas/avro/*.avsc).

-- The next offset to read per (sink, topic, partition), written in the same transaction as the data.
CREATE TABLE sink_offsets (
  sink         text        NOT NULL,
  topic        text        NOT NULL,
  "partition"  integer     NOT NULL CHECK ("partition" >= 0),
  next_offset  bigint      NOT NULL CHECK (next_offset >= 0),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sink, topic, "partition")
);

-- routing-decisions: exactly one decision per conversation.
CREATE TABLE routing_decisions (
  conversation_id text        PRIMARY KEY,
  tenant_id       text        NOT NULL,
  agent_id        text        NOT NULL,
  skill           text        NOT NULL,
  priority        integer     NOT NULL,
  requested_at    timestamptz NOT NULL,
  assigned_at     timestamptz NOT NULL,
  wait_ms         bigint      NOT NULL,
  queued          boolean     NOT NULL,
  reason          text        NOT NULL CHECK (reason IN ('ONLY_CANDIDATE', 'LEAST_LOADED', 'LONGEST_IDLE', 'LOWEST_AGENT_ID'))
);
CREATE INDEX routing_decisions_tenant_agent ON routing_decisions (tenant_id, agent_id);

-- positions: the latest record per (account, instrument) is the current position.
CREATE TABLE positions (
  account_id         text           NOT NULL,
  instrument         text           NOT NULL,
  quantity           numeric(20, 4) NOT NULL,
  cost_basis         numeric(38, 10) NOT NULL,
  average_cost       numeric(20, 6),
  realised_pnl       numeric(38, 10) NOT NULL,
  currency           text           NOT NULL,
  open_lots          integer        NOT NULL,
  live_trades        integer        NOT NULL,
  last_trade_id      text           NOT NULL,
  last_trade_version integer        NOT NULL,
  updated_at         timestamptz    NOT NULL,
  PRIMARY KEY (account_id, instrument)
);

-- ledger-entries: insert-only; an entry is never edited (amends and cancels post reversals).
CREATE TABLE ledger_entries (
  entry_id       text            PRIMARY KEY,
  account_id     text            NOT NULL,
  trade_id       text            NOT NULL,
  trade_version  integer         NOT NULL,
  ledger_account text            NOT NULL,
  side           text            NOT NULL CHECK (side IN ('DEBIT', 'CREDIT')),
  amount         numeric(38, 10) NOT NULL,
  currency       text            NOT NULL,
  reverses       text,
  posted_at      timestamptz     NOT NULL
);
CREATE INDEX ledger_entries_trade ON ledger_entries (trade_id, trade_version);
CREATE INDEX ledger_entries_ledger_account ON ledger_entries (ledger_account, currency);

-- reconciliations: the latest result per payment is current.
CREATE TABLE reconciliations (
  payment_id          text           PRIMARY KEY,
  status              text           NOT NULL CHECK (status IN ('MATCHED', 'AMOUNT_MISMATCH', 'MISSING_SETTLEMENT', 'UNEXPECTED_SETTLEMENT')),
  settlement_id       text,
  merchant_id         text,
  vendor              text           NOT NULL CHECK (vendor IN ('ADYEN', 'SEPA')),
  expected_amount     numeric(20, 4),
  settled_amount      numeric(20, 4),
  difference          numeric(21, 4),
  fee                 numeric(20, 4),
  currency            text           NOT NULL,
  settlement_currency text,
  decided_at          timestamptz    NOT NULL
);
CREATE INDEX reconciliations_status ON reconciliations (status);
