/**
 * What every command shares: printing (results on stdout, progress and notes on stderr), reading the settings,
 * naming a topology, and parsing option values into one clear sentence when they are wrong.
 */
import { applicationOf, type Application } from '../topologies/index.js';
import { ConfigError } from '../runtime/errors.js';
import { loadSettings, type Settings } from './settings.js';
import { UsageError } from './errors.js';

export const out = (line = ''): void => void process.stdout.write(`${line}\n`);
export const note = (line: string): void => void process.stderr.write(`${line}\n`);

export function settings(): Settings {
  return loadSettings(process.env);
}

/** The catalog application named on the command line; an unknown name is a usage error listing the names. */
export function topologyArg(name: string): Application {
  try {
    return applicationOf(name);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

export function positiveInt(option: string, text: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) <= 0 || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${option} takes a positive whole number, not '${text}'`);
  }
  return Number(text);
}

export function nonNegativeInt(option: string, text: string): number {
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(Number(text))) throw new UsageError(`${option} takes a whole number >= 0, not '${text}'`);
  return Number(text);
}

export function positiveNumber(option: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${option} takes a number > 0, not '${text}'`);
  return n;
}

export function ratio(option: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n >= 1) throw new UsageError(`${option} takes a ratio from 0 up to (not including) 1, such as 0.05, not '${text}'`);
  return n;
}

/** Epoch milliseconds or an ISO-8601 date-time. */
export function timestampArg(option: string, text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const t = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || !Number.isFinite(t)) {
    throw new UsageError(`${option} takes epoch milliseconds or an ISO-8601 date-time such as 2025-01-06T09:00:00Z, not '${text}'`);
  }
  return t;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
