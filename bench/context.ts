/**
 * What every bench section gets from the driver (bench/index.ts), and what it hands back.
 */
import type { Admin, Kafka } from 'kafkajs';
import type { SchemaRegistryClient } from '../schemas/registry-client.js';
import type { Application, ApplicationName } from '../topologies/index.js';
import type { Variant } from './common.js';

export const SECTIONS = ['apps', 'latency', 'sinks', 'ceiling', 'scale'] as const;
export type Section = (typeof SECTIONS)[number];

export interface BenchOptions {
  sections: Section[];
  /** apps, scale, sinks: records pre-produced and drained */
  events: number;
  partitions: number;
  timeoutMs: number;
  /** apps, latency: which applications */
  apps: ApplicationName[];
  latencySeconds: number;
  warmupSeconds: number;
  latencyRate: number;
  /** scale: worker process counts */
  workers: number[];
  seed: number;
  /** ceiling (the original bench's flags) */
  records: number;
  keys: number;
  variants: Variant[];
  concurrency: number;
  repeat: number;
  cpuProf: boolean;
  kafkajsLinearGrouping: boolean;
  json: boolean;
  keep: boolean;
}

export interface BenchContext {
  /** Prefix of every topic, group, subject, schema and key the run makes: `bench-<8 hex>`. */
  run: string;
  opts: BenchOptions;
  brokers: string;
  /** The registry's base URL (Confluent API under /apis/ccompat/v7); null when no section needs it. */
  registryUrl: string | null;
  registry: SchemaRegistryClient | null;
  kafka: Kafka;
  admin: Admin;
  /** The local broker JVM (for its CPU time); null when not known. */
  brokerPid: number | null;
  /** Input topics already produced for an application (apps and scale drain the same ones). */
  inputs: Map<ApplicationName, AppInput>;
}

export interface AppInput {
  /** catalog topic → bench topic, for the application's inputs */
  names: Record<string, string>;
  records: number;
}

/** What a section reports: its text (header lines and a table), its JSON, and the aims it checks. */
export interface SectionReport {
  section: Section;
  text: string;
  json: unknown;
  aims: Aim[];
}

export interface Aim {
  what: string;
  measured: number;
  target: number;
  unit: string;
  /** '>=': at least the target; '<=': at most */
  cmp: '>=' | '<=';
}

export const aimMet = (a: Aim) => (a.cmp === '>=' ? a.measured >= a.target : a.measured <= a.target);

/** Bench topic names for catalog topics: `<prefix>-<topic>`. */
export function topicNames(prefix: string, topics: readonly { topic: string }[]): Record<string, string> {
  return Object.fromEntries(topics.map((c) => [c.topic, `${prefix}-${c.topic}`]));
}

export const inputTopicsOf = (app: Application, names: Readonly<Record<string, string>>) => app.inputs.map((c) => names[c.topic]!);
