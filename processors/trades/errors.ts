import { RecordRejectedError } from '../../runtime/errors.js';

/**
 * A trade event that is well formed but cannot be applied to the state it meets: a version out of sequence
 * (stale or with a gap), an amend or cancel of a trade that is unknown or already cancelled, a cancel whose terms
 * are not the cancelled version's, a second currency for one (account, instrument), or a position that would no
 * longer fit its Avro decimal.
 *
 * The trades processor throws it before it writes or forwards anything; as a RecordRejectedError the record lands
 * on the dead-letter topic with stage `validation`, `weir.dlq.error.class` = `TradeRejectedError` and the reason,
 * whatever the processing-error policy, and processing goes on with state untouched.
 */
export class TradeRejectedError extends RecordRejectedError {
  constructor(
    readonly reason: TradeRejection,
    message: string,
  ) {
    super(message);
  }
}

/** Why a trade event was rejected. */
export type TradeRejection =
  | 'STALE_VERSION'
  | 'VERSION_GAP'
  | 'UNKNOWN_TRADE'
  | 'TRADE_CANCELLED'
  | 'CANCEL_TERMS_MISMATCH'
  | 'CURRENCY_MISMATCH'
  | 'POSITION_OVERFLOW';
