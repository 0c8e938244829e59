/**
 * Sinks: output topics into Postgres and Redis, exactly once (offsets stored with the data).
 */
export { SinkRunner } from './sink-runner.js';
export type { SinkRunnerConfig, SinkRunnerStatus, SinkRunnerState, SinkRunnerEvents, PartitionStatus } from './sink-runner.js';
export { BatchingSink, tpKey } from './sink.js';
export type { Sink, SinkRecord, SinkBatch, PartitionBatch, OffsetAdvance, FlushResult, TopicPartition } from './sink.js';
export { PostgresSink, isRetriablePgError } from './postgres/postgres-sink.js';
export type { PostgresSinkConfig } from './postgres/postgres-sink.js';
export { postgresWriters, unnestWriter } from './postgres/writers.js';
export type { PostgresTopicWriter, Column, Row, Cell } from './postgres/writers.js';
export { ensureDatabase, migrate } from './postgres/migrate.js';
export { RedisSink, isRetriableRedisError } from './redis/redis-sink.js';
export type { RedisSinkConfig } from './redis/redis-sink.js';
export { redisWriters } from './redis/writers.js';
export type { RedisTopicWriter, PositionJson, RoutingDecisionJson } from './redis/writers.js';
export { routingLiveStateWriters, liveStateKeys } from './redis/routing-live-state.js';
export type { LiveStateWrite } from './redis/routing-live-state.js';
export { CircuitBreaker } from './circuit-breaker.js';
export type { BreakerState, BreakerOptions } from './circuit-breaker.js';
export { createRetry } from './retry.js';
export type { RetryOptions, Bail } from './retry.js';
export {
  SinkError,
  SinkWriteError,
  OffsetConflictError,
  PoisonRecordError,
  RecordShapeError,
  BreakerOpenError,
  RetriesExhaustedError,
  RetryAbortedError,
} from './errors.js';
export type { OffsetMismatch } from './errors.js';
