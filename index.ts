/**
 * weir's public surface: build a topology, run it in workers, test it with the in-memory driver.
 * Everything not exported here is internal.
 */
export { TopologyBuilder, Topology } from './runtime/topology.js';
export type { SourceOptions, SinkOptions, SubTopology } from './runtime/topology.js';
export type { Processor, ProcessorContext, ProcessorSupplier, Record, RecordMetadata, Headers, PunctuationType, Cancellable } from './runtime/processor.js';
export { Worker } from './runtime/worker.js';
export type { WorkerConfig, WorkerEventMap, ProcessingGuarantee } from './runtime/worker.js';
export { TopologyTestDriver, InMemoryLog } from './runtime/test-driver.js';
export type { TestDriverOptions, TestOutputRecord } from './runtime/test-driver.js';
export { Serdes } from './runtime/serde.js';
export type { Serde, SyncSerde, SerdeContext } from './runtime/serde.js';
export { keyValueStore } from './state/store.js';
export type { KeyValueStore, KeyValue, StoreSpec } from './state/store.js';
export { partitionForKey, murmur2 } from './runtime/partitioner.js';
export {
  WeirError,
  TopologyError,
  ConfigError,
  TaskMigratedError,
  TaskCorruptedError,
  ProcessingError,
  StateDirLockedError,
  BrokerUnreachableError,
  RecordRejectedError,
} from './runtime/errors.js';
export { avroSerde, SchemaRegistryClient } from './schemas/index.js';
