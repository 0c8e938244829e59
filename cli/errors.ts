/**
 * Errors of the weir command, typed by what the user does next:
 * - `UsageError`: the command line is wrong (a missing or malformed option); fix the arguments. Exit code 2.
 * - `InputError`: a record given to `weir produce` is wrong; the message names the line and the field.
 * Everything else comes from the runtime and its areas (ConfigError, BrokerUnreachableError,
 * RegistryUnavailableError, SchemaIncompatibleError, ReplayRefusedError, …) and is shown as its message.
 */
import { ConfigError, WeirError } from '../runtime/errors.js';

export class UsageError extends ConfigError {}

export class InputError extends WeirError {}

/** Exit codes: 0 fine, 1 failed, 2 wrong usage. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/**
 * What to print for an error that reached the top: one line (its message, causes appended when they add to it),
 * or with `debug` the stack of the error and of each cause.
 */
export function describeError(err: unknown, debug: boolean): string {
  if (debug) {
    const parts: string[] = [];
    let e: unknown = err;
    for (let depth = 0; e !== undefined && depth < 5; depth++) {
      parts.push(depth === 0 ? stackOf(e) : `caused by: ${stackOf(e)}`);
      e = e instanceof Error ? e.cause : undefined;
    }
    return parts.join('\n');
  }
  let line = oneLine(messageOf(err));
  // A foreign error (kafkajs, node) often says more in its cause: "Connection error: connect ECONNREFUSED …".
  if (!(err instanceof WeirError) && err instanceof Error && err.cause !== undefined) {
    const cause = oneLine(messageOf(err.cause));
    if (cause && !line.includes(cause)) line = `${line}: ${cause}`;
  }
  if (!(err instanceof WeirError)) line += ' (set WEIR_DEBUG=1 to see the stack)';
  return line;
}

export function exitCodeOf(err: unknown): number {
  return err instanceof UsageError ? EXIT.usage : EXIT.failed;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

function stackOf(err: unknown): string {
  return err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
