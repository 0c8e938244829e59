/**
 * Experiment only (`npm run bench -- --kafkajs-linear-grouping`), preloaded into the variant processes:
 * kafkajs 2.2.4 groups a sendBatch's messages per partition with `[...current, message]` for every message,
 * which is quadratic in the messages per partition (tulios/kafkajs PR #1576, never released). This swaps in
 * a linear version with the same result, in this process only (node_modules is not touched), to measure what
 * the fix is worth.
 */
import { createRequire } from 'node:module';
import Module from 'node:module';

const require = createRequire(import.meta.url);
const file = require.resolve('kafkajs/src/producer/groupMessagesPerPartition');

interface GroupArgs {
  topic: string;
  partitionMetadata: unknown[];
  messages: unknown[];
  partitioner: (args: { topic: string; partitionMetadata: unknown[]; message: unknown }) => number;
}

function groupMessagesPerPartition({ topic, partitionMetadata, messages, partitioner }: GroupArgs): Record<number, unknown[]> {
  const result: Record<number, unknown[]> = {};
  if (partitionMetadata.length === 0) return result;
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    (result[partition] ??= []).push(message);
  }
  return result;
}

const m = new Module(file);
m.filename = file;
m.loaded = true;
m.exports = groupMessagesPerPartition;
(require.cache as Record<string, Module>)[file] = m;
