/**
 * Avro with a schema registry: the registry client, the Confluent-wire-format serde, decimals as exact bigints,
 * checked registration, and the errors of the area.
 */
export { SchemaRegistryClient, COMPATIBILITY_LEVELS } from './registry-client.js';
export type { SchemaRegistryClientOptions, CompatibilityLevel, AvroSchemaInput, RegisteredSchema, SchemaById } from './registry-client.js';
export { avroSerde, resolutionProblem, MAGIC_BYTE, HEADER_BYTES } from './avro-serde.js';
export type { AvroSerde, AvroSerdeOptions } from './avro-serde.js';
export { DecimalType, logicalTypes, parseDecimal, formatDecimal, toTwosComplement, fromTwosComplement } from './decimal.js';
export { registerSchemas, checkSchemas } from './registration.js';
export type { SchemaEntry, SchemaCheck, SchemaRegistration } from './registration.js';
export {
  SchemaRegistryError,
  RegistryUnavailableError,
  RegistryAuthError,
  InvalidSchemaError,
  SchemaIncompatibleError,
  DecimalError,
  AvroEncodeError,
  AvroDecodeError,
  WrongMagicByteError,
  TruncatedRecordError,
  UnknownSchemaIdError,
  SchemaResolutionError,
  TrailingBytesError,
} from './errors.js';
