/**
 * The sink runner's surface without a broker: configuration checks, typed events, status before start.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../runtime/errors.js';
import { Serdes } from '../../runtime/serde.js';
import { RecordShapeError } from '../../sinks/errors.js';
import { decimalText, dec } from '../../sinks/fields.js';
import { PostgresSink } from '../../sinks/postgres/postgres-sink.js';
import { postgresWriters } from '../../sinks/postgres/writers.js';
import { SinkRunner } from '../../sinks/sink-runner.js';

const sink = () => new PostgresSink({ name: 'orders-sink', writers: { t: postgresWriters.ledgerEntries() } });

describe('SinkRunner surface', () => {
  it('rejects a bad sink name, no topics and no brokers', () => {
    expect(() => new SinkRunner({ sink: new PostgresSink({ name: 'bad name', writers: { t: postgresWriters.positions() } }), brokers: 'h:1', topics: { t: Serdes.json() } })).toThrow(ConfigError);
    expect(() => new SinkRunner({ sink: sink(), brokers: 'h:1', topics: {} })).toThrow(ConfigError);
    expect(() => new SinkRunner({ sink: sink(), brokers: ' ', topics: { t: Serdes.json() } })).toThrow(ConfigError);
  });

  it('on() returns an unsubscribe function and rejects unknown event names; status starts as starting', () => {
    const runner = new SinkRunner({ sink: sink(), brokers: 'h:1', topics: { t: Serdes.json() } });
    const off = runner.on('flush', () => undefined);
    expect(typeof off).toBe('function');
    off();
    expect(() => runner.on('flushed' as 'flush', () => undefined)).toThrow(/unknown sink runner event 'flushed'/);
    expect(runner.status()).toMatchObject({ sink: 'orders-sink', state: 'starting', breaker: 'closed', partitions: [], lastError: null, rowsWritten: 0, batches: 0 });
  });
});

describe('exact decimals', () => {
  it('an unscaled bigint becomes decimal text at its scale, with no floating point', () => {
    expect(decimalText(101250000n, 6)).toBe('101.250000');
    expect(decimalText(-1n, 4)).toBe('-0.0001');
    expect(decimalText(0n, 10)).toBe('0.0000000000');
    expect(decimalText(12345678901234567890123456789012345678n, 10)).toBe('1234567890123456789012345678.9012345678');
    expect(decimalText(42n, 0)).toBe('42');
  });

  it('a value beyond the column precision, or not a bigint, is refused naming the field', () => {
    expect(() => dec({ amount: 10n ** 20n }, 'amount', 20, 4)).toThrow(RecordShapeError);
    expect(() => dec({ amount: 1.5 }, 'amount', 20, 4)).toThrow(/field 'amount' must be an unscaled decimal/);
    expect(dec({ amount: 10n ** 20n - 1n }, 'amount', 20, 4)).toBe('9999999999999999.9999');
  });
});
