/**
 * The TypeScript shapes of the Avro contracts in schemas/avro (as the Avro serde decodes them).
 * Decimals are `bigint` holding the UNSCALED value at the field's fixed scale (e.g. a price of 101.25 at scale 6 is
 * 101250000n); timestamps are epoch milliseconds. Keep these in step with the .avsc files.
 */

/** Fixed scales of the decimal fields. */
export const Scale = {
  quantity: 4,
  price: 6,
  /** quantity × price: 4 + 6 */
  notional: 10,
  averageCost: 6,
  money: 4,
} as const;

export type Vendor = 'ADYEN' | 'SEPA';

export interface AgentEvent {
  eventId: string;
  tenantId: string;
  agentId: string;
  type: 'LOGIN' | 'LOGOUT' | 'STATUS';
  status: 'AVAILABLE' | 'AWAY' | null;
  skills: string[];
  maxConcurrent: number;
  eventTime: number;
}

export interface ConversationEvent {
  eventId: string;
  tenantId: string;
  conversationId: string;
  type: 'REQUESTED' | 'ENDED';
  skill: string | null;
  priority: number | null;
  eventTime: number;
}

export interface RoutingDecision {
  tenantId: string;
  conversationId: string;
  agentId: string;
  skill: string;
  priority: number;
  requestedAt: number;
  assignedAt: number;
  waitMs: number;
  queued: boolean;
  reason: 'ONLY_CANDIDATE' | 'LEAST_LOADED' | 'LONGEST_IDLE' | 'LOWEST_AGENT_ID';
}

export interface TradeEvent {
  eventId: string;
  accountId: string;
  tradeId: string;
  type: 'NEW' | 'AMEND' | 'CANCEL';
  version: number;
  instrument: string;
  side: 'BUY' | 'SELL';
  /** scale 4 */
  quantity: bigint;
  /** scale 6 */
  price: bigint;
  currency: string;
  tradeTime: number;
  eventTime: number;
}

export interface Position {
  accountId: string;
  instrument: string;
  /** signed, scale 4 */
  quantity: bigint;
  /** signed Σ open lot quantity × lot price, scale 10 */
  costBasis: bigint;
  /** |costBasis / quantity| rounded half-even to scale 6; null when flat */
  averageCost: bigint | null;
  /** scale 10 */
  realisedPnl: bigint;
  currency: string;
  openLots: number;
  liveTrades: number;
  lastTradeId: string;
  lastTradeVersion: number;
  updatedAt: number;
}

export interface LedgerEntry {
  entryId: string;
  accountId: string;
  tradeId: string;
  tradeVersion: number;
  ledgerAccount: string;
  side: 'DEBIT' | 'CREDIT';
  /** scale 10 */
  amount: bigint;
  currency: string;
  reverses: string | null;
  postedAt: number;
}

export interface Payment {
  eventId: string;
  paymentId: string;
  merchantId: string;
  /** scale 4 */
  amount: bigint;
  currency: string;
  vendor: Vendor;
  eventTime: number;
}

export interface Settlement {
  eventId: string;
  paymentId: string;
  settlementId: string;
  vendor: Vendor;
  /** scale 4 */
  grossAmount: bigint;
  fee: bigint;
  netAmount: bigint;
  currency: string;
  settledAt: number;
  eventTime: number;
}

export interface Reconciliation {
  paymentId: string;
  status: 'MATCHED' | 'AMOUNT_MISMATCH' | 'MISSING_SETTLEMENT' | 'UNEXPECTED_SETTLEMENT';
  settlementId: string | null;
  merchantId: string | null;
  vendor: Vendor;
  expectedAmount: bigint | null;
  settledAmount: bigint | null;
  /** scale 4: gross − amount */
  difference: bigint | null;
  fee: bigint | null;
  currency: string;
  settlementCurrency: string | null;
  decidedAt: number;
}
