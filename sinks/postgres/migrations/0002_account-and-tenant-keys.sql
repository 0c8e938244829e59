-- weir sinks: rows keyed by what identifies them on their topic, not by an id that is unique only inside it.
-- An entry id is derived from the trade id, and a trade is identified by its account and its id: two accounts may
-- post the same entry ids. A conversation id is unique inside its tenant only. Under the keys of 0001 the second
-- account's entries were dropped (insert-only) and one tenant's decision overwrote another's.
-- The rows already stored stay (unique under the old keys, so under the new ones too); rows lost to the old keys
-- come back only by reading their topic again: delete the sink's offsets of that topic and it reads from the start
-- of the log (the ledger is insert-only, decisions are latest wins: both converge).
-- positions ((account_id, instrument)), reconciliations (payment_id: payments are keyed by payment id globally) and
-- sink_offsets ((sink, topic, partition)) already have the right keys.

ALTER TABLE ledger_entries
  DROP CONSTRAINT ledger_entries_pkey,
  ADD PRIMARY KEY (account_id, entry_id);

-- the entries of one trade version: a trade is (account, trade id)
DROP INDEX ledger_entries_trade;
CREATE INDEX ledger_entries_trade ON ledger_entries (account_id, trade_id, trade_version);

ALTER TABLE routing_decisions
  DROP CONSTRAINT routing_decisions_pkey,
  ADD PRIMARY KEY (tenant_id, conversation_id);
