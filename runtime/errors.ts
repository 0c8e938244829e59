/**
 * Errors of the runtime, typed by what the caller does next:
 * - `WeirError`: the root; `retriable` says whether the same call may succeed later.
 * - `TopologyError`: the topology is wrong; fix the code, nothing runs.
 * - `ConfigError`: a setting is wrong; the message names it.
 * - `TaskMigratedError`: another worker owns the task now (fenced); close it as a zombie and rejoin.
 * - `TaskCorruptedError`: the task's uncommitted work is lost; drop it and restore from the changelog.
 * - `ProcessingError`: user code failed; carries processor, task and record coordinates.
 * - `StateDirLockedError`: another live worker holds the state directory.
 * - `RecordRejectedError`: thrown by a processor that finds a record invalid given its state (before changing
 *   anything); the record goes to the dead-letter topic whatever the processing-error policy.
 */
export class WeirError extends Error {
  readonly retriable: boolean;
  constructor(message: string, opts: { cause?: unknown; retriable?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.retriable = opts.retriable ?? false;
  }
}

export class TopologyError extends WeirError {}

export class ConfigError extends WeirError {}

export class TaskMigratedError extends WeirError {
  constructor(readonly taskId: string, cause?: unknown) {
    super(`task ${taskId} was migrated to another worker (fenced)`, { cause, retriable: true });
  }
}

export class TaskCorruptedError extends WeirError {
  constructor(readonly taskId: string, reason: string, cause?: unknown) {
    super(`task ${taskId} lost its uncommitted work: ${reason}`, { cause, retriable: true });
  }
}

export interface RecordCoordinates {
  topic: string;
  partition: number;
  offset: string;
}

export class ProcessingError extends WeirError {
  constructor(
    readonly processor: string,
    readonly taskId: string,
    readonly record: RecordCoordinates,
    cause: unknown,
  ) {
    super(
      `processor '${processor}' of task ${taskId} failed on ${record.topic}/${record.partition}@${record.offset}: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
  }
}

export class StateDirLockedError extends WeirError {
  constructor(readonly dir: string, readonly holderPid: number) {
    super(
      `state directory ${dir} is locked by another worker (pid ${holderPid}); stop it or give this worker its own stateDir`,
    );
  }
}

export class BrokerUnreachableError extends WeirError {
  constructor(readonly brokers: string, waitedMs: number, cause?: unknown) {
    super(`cannot reach Kafka at ${brokers} after ${Math.round(waitedMs / 1000)} s; is the broker running and the address right?`, {
      cause,
      retriable: true,
    });
  }
}

export class RecordRejectedError extends WeirError {}

/**
 * Errors of a broker outage that kafkajs stops its consumer on (restart: false): the coordinator or a broker cannot be
 * reached for longer than its retries. Authentication and authorization failures are not outages.
 */
export function isBrokerOutage(err: unknown): boolean {
  for (const e of errorChain(err)) {
    if (e.name && /SASL|Authentication|Authorization/i.test(e.name)) return false;
    if (e.type && /AUTHORIZATION|AUTHENTICATION|SASL/.test(e.type)) return false;
    if (e.name && /^KafkaJS(GroupCoordinatorNotFound|ConnectionError|ConnectionClosedError|RequestTimeoutError|NumberOfRetriesExceeded|BrokerNotFound|LockTimeout)$/.test(e.name)) return true;
    if (e.type && /COORDINATOR_NOT_AVAILABLE|NOT_COORDINATOR|COORDINATOR_LOAD_IN_PROGRESS|LEADER_NOT_AVAILABLE|NOT_LEADER/.test(e.type)) return true;
  }
  return /Failed to find group coordinator|Connection error|Connection timeout|ECONNREFUSED/.test(String((err as Error)?.message ?? err));
}

/** What kafkajs and weir errors carry, as far as telling them apart goes. */
export interface ErrorLink {
  name?: string;
  type?: string;
  code?: number;
  cause?: unknown;
  originalError?: unknown;
}

/** An error and the errors it wraps (`cause`, kafkajs' `originalError`), outermost first, at most 6 deep. */
export function* errorChain(err: unknown): Generator<ErrorLink> {
  let e = err as ErrorLink | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 6; depth++) {
    yield e;
    e = (e.cause ?? e.originalError) as ErrorLink | undefined;
  }
}
