/**
 * A thin client of a schema registry's Confluent-compatible API (Apicurio's `/apis/ccompat/v7`, or Confluent's).
 * Responsible for:
 * - schemas by id, parsed with weir's logical types (decimal → bigint) and cached forever: ids are immutable;
 * - the id of a schema under a subject, registering it or looking it up by content, cached;
 * - subjects, versions, the latest version, and the compatibility level (the subject's, else the global one);
 * - turning failures into typed errors: an unreachable, failing or credential-refusing registry is retriable
 *   and named by its URL (never with credentials); a refusal is not.
 * Requests go through @kafkajs/confluent-schema-registry (its HTTP client, retries and basic auth); the few
 * endpoints it does not cover (version list, global config, delete) use fetch with the same credentials.
 */
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import { logicalTypes } from './decimal.js';
import {
  InvalidSchemaError,
  RegistryAuthError,
  RegistryUnavailableError,
  SchemaIncompatibleError,
  SchemaRegistryError,
  UnknownSchemaIdError,
} from './errors.js';

export type CompatibilityLevel =
  | 'NONE'
  | 'BACKWARD'
  | 'BACKWARD_TRANSITIVE'
  | 'FORWARD'
  | 'FORWARD_TRANSITIVE'
  | 'FULL'
  | 'FULL_TRANSITIVE';

export const COMPATIBILITY_LEVELS: readonly CompatibilityLevel[] = [
  'NONE',
  'BACKWARD',
  'BACKWARD_TRANSITIVE',
  'FORWARD',
  'FORWARD_TRANSITIVE',
  'FULL',
  'FULL_TRANSITIVE',
];

/** An Avro schema as JSON text, as parsed JSON, or as an avsc type. */
export type AvroSchemaInput = string | object | avro.Type;

export interface SchemaRegistryClientOptions {
  /**
   * Base URL of the Confluent-compatible API, e.g. `http://127.0.0.1:18081/apis/ccompat/v7` for Apicurio.
   * Credentials in the URL (`http://user:pass@host`) are taken out and used as `auth`.
   */
  url: string;
  /** HTTP basic auth. Never logged, never part of an error message. */
  auth?: { username: string; password: string };
  /**
   * Timeout of one HTTP request; default 5000 ms, well inside a worker's session timeout. A failed request is
   * retried by the library (3 times, exponential backoff from 100 ms). Its retry settings are one object shared
   * by every client in the process (`new SchemaRegistry({ retry })` assigns into it), so weir leaves them alone.
   */
  requestTimeoutMs?: number;
}

export interface RegisteredSchema {
  subject: string;
  version: number;
  id: number;
  /** The schema as the registry returns it (JSON text). */
  schema: string;
}

export interface SchemaById {
  id: number;
  type: avro.Type;
}

type RegistryArgs = ConstructorParameters<typeof SchemaRegistry>[0];
type Middleware = NonNullable<RegistryArgs['middlewares']>[number];

/** Minimal view of the library's API client (mappersmith), which it keeps private. */
interface ApiResponse {
  data(): any;
  status(): number;
}
interface Api {
  Schema: { find(p: { id: number }): Promise<ApiResponse> };
  Subject: {
    all(p?: object): Promise<ApiResponse>;
    latestVersion(p: { subject: string }): Promise<ApiResponse>;
    version(p: { subject: string; version: number | string }): Promise<ApiResponse>;
    registered(p: { subject: string; body: object }): Promise<ApiResponse>;
    config(p: { subject: string }): Promise<ApiResponse>;
    updateConfig(p: { subject: string; body: object }): Promise<ApiResponse>;
    register(p: { subject: string; body: object }): Promise<ApiResponse>;
  };
}

/** The library's ResponseError: `status` and a message "<clientId> - <registry message or 'Error, status N: …'>". */
interface ResponseErrorLike {
  name: string;
  status: number;
  message: string;
}

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
/** A fresh object per parse: avsc keeps its registry of named types in the options it is given. */
const avroOptions = () => ({ logicalTypes, assertLogicalTypes: true });

/**
 * mappersmith answers a network failure (refused, DNS, reset, timeout) as a status 400/408 "response" whose body
 * is the error text, which the library turns into "Error, status 400: connect ECONNREFUSED …".
 */
const NETWORK_FAILURE = /^Error, status 40[08]: (?=.*(\bE[A-Z]{3,}\b|socket hang up|Timeout \(|getaddrinfo|connect))/;

export class SchemaRegistryClient {
  /** The API base URL, without credentials. */
  readonly url: string;
  private readonly registry: SchemaRegistry;
  private readonly api: Api;
  /** A true private field, so logging the client object cannot show credentials. */
  readonly #authHeader: string | undefined;
  private readonly timeoutMs: number;
  private readonly byId = new Map<number, Promise<SchemaById>>();
  private readonly ids = new Map<string, Promise<number>>();

  constructor(opts: SchemaRegistryClientOptions) {
    const parsed = new URL(opts.url);
    let auth = opts.auth;
    if (parsed.username && !auth) auth = { username: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) };
    parsed.username = '';
    parsed.password = '';
    this.url = parsed.toString().replace(/\/+$/, '');
    this.timeoutMs = opts.requestTimeoutMs ?? 5_000;
    this.#authHeader = auth ? `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` : undefined;
    this.registry = new SchemaRegistry(
      {
        host: this.url,
        auth,
        clientId: 'weir',
        middlewares: [requestTimeout(this.timeoutMs)],
      },
      { [SchemaType.AVRO]: avroOptions() },
    );
    // The library exposes encode/decode/register helpers with opinions of their own (it sets a subject's
    // compatibility on first registration); weir needs the plain endpoints, which its API client has.
    this.api = (this.registry as unknown as { api: Api }).api;
  }

  /** Parse a schema with weir's logical types; an invalid one is an InvalidSchemaError. */
  parse(schema: AvroSchemaInput): avro.Type {
    if (avro.Type.isType(schema)) return schema as avro.Type;
    let json: unknown = schema;
    if (typeof schema === 'string') {
      try {
        json = JSON.parse(schema);
      } catch (err) {
        throw new InvalidSchemaError(`the Avro schema is not valid JSON: ${(err as Error).message}`, undefined, { cause: err });
      }
    }
    try {
      return avro.Type.forSchema(json as avro.Schema, avroOptions());
    } catch (err) {
      throw new InvalidSchemaError(`not a valid Avro schema: ${(err as Error).message}`, undefined, { cause: err });
    }
  }

  /** The schema as the JSON text sent to the registry. */
  schemaText(schema: AvroSchemaInput): string {
    if (typeof schema === 'string') return schema;
    if (avro.Type.isType(schema)) return JSON.stringify((schema as avro.Type).schema({ exportAttrs: true }));
    return JSON.stringify(schema);
  }

  /** The writer schema with this id; 404 is an UnknownSchemaIdError. Cached forever once found. */
  schemaById(id: number): Promise<SchemaById> {
    let p = this.byId.get(id);
    if (!p) {
      p = this.fetchSchemaById(id);
      this.byId.set(id, p);
      p.catch(() => this.byId.delete(id));
    }
    return p;
  }

  private async fetchSchemaById(id: number): Promise<SchemaById> {
    let type: unknown;
    try {
      type = await this.registry.getSchema(id);
    } catch (err) {
      if (statusOf(err) === 404) throw new UnknownSchemaIdError(id, this.url);
      if (err instanceof Error && err.name.startsWith('ConfluentSchemaRegistry')) {
        throw new InvalidSchemaError(`schema id ${id} cannot be used: ${err.message}`, undefined, { cause: err });
      }
      throw this.failure(err, `fetching schema id ${id}`);
    }
    if (!avro.Type.isType(type)) throw new InvalidSchemaError(`schema id ${id} is not an Avro schema`);
    return { id, type: type as avro.Type };
  }

  /**
   * The id of `schema` under `subject`: registered if it is not yet (the registry checks compatibility), or only
   * looked up by content with `register: false` (then a schema not registered is a SchemaRegistryError). Cached.
   */
  idOf(subject: string, schema: AvroSchemaInput, opts: { register?: boolean } = {}): Promise<number> {
    const register = opts.register ?? true;
    const text = this.schemaText(schema);
    const key = `${register ? 'r' : 'l'}\u0000${subject}\u0000${text}`;
    let p = this.ids.get(key);
    if (!p) {
      p = register
        ? this.register(subject, text).then((r) => r.id)
        : this.lookup(subject, text).then((r) => {
            if (!r) throw new SchemaRegistryError(`subject ${subject} has no such schema registered (looked up by content at ${this.url})`, 404);
            return r.id;
          });
      this.ids.set(key, p);
      p.catch(() => this.ids.delete(key));
    }
    return p;
  }

  /** Register a schema under a subject (idempotent for a schema already there). 409 is a SchemaIncompatibleError. */
  async register(subject: string, schema: AvroSchemaInput): Promise<{ id: number }> {
    const text = this.schemaText(schema);
    try {
      const res = await this.api.Subject.register({ subject, body: { schema: text } });
      return { id: Number(res.data().id) };
    } catch (err) {
      const status = statusOf(err);
      if (status === 409) {
        const level = await this.compatibility(subject).catch(() => 'configured');
        throw new SchemaIncompatibleError(subject, level, `the registry refused it: ${registryMessage(err)}`, undefined, err);
      }
      if (status === 422) throw new InvalidSchemaError(`subject ${subject}: the registry says the schema is invalid: ${registryMessage(err)}`, 422, { cause: err });
      throw this.failure(err, `registering a schema under subject ${subject}`);
    }
  }

  /** The registered version of `schema` under `subject`, found by content, or undefined. */
  async lookup(subject: string, schema: AvroSchemaInput): Promise<RegisteredSchema | undefined> {
    try {
      const res = await this.api.Subject.registered({ subject, body: { schema: this.schemaText(schema) } });
      return toRegistered(res.data(), subject);
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.failure(err, `looking up a schema under subject ${subject}`);
    }
  }

  /** The latest version of a subject, or undefined when the subject does not exist. */
  async latest(subject: string): Promise<RegisteredSchema | undefined> {
    try {
      const res = await this.api.Subject.latestVersion({ subject });
      return toRegistered(res.data(), subject);
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.failure(err, `reading the latest version of subject ${subject}`);
    }
  }

  /** One version of a subject, or undefined when it does not exist. */
  async version(subject: string, version: number): Promise<RegisteredSchema | undefined> {
    try {
      const res = await this.api.Subject.version({ subject, version });
      return toRegistered(res.data(), subject);
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.failure(err, `reading version ${version} of subject ${subject}`);
    }
  }

  /** The version numbers of a subject, ascending; [] when the subject does not exist. */
  async versions(subject: string): Promise<number[]> {
    const res = await this.http('GET', `/subjects/${encodeURIComponent(subject)}/versions`, `listing the versions of subject ${subject}`, [404]);
    if (res.status === 404) return [];
    return (res.body as number[]).map(Number).sort((a, b) => a - b);
  }

  async subjects(): Promise<string[]> {
    try {
      const res = await this.api.Subject.all();
      return res.data() as string[];
    } catch (err) {
      throw this.failure(err, 'listing subjects');
    }
  }

  /** The compatibility level of a subject, falling back to the global level (also what no subject gives). */
  async compatibility(subject?: string): Promise<CompatibilityLevel> {
    if (subject !== undefined) {
      try {
        const res = await this.api.Subject.config({ subject });
        return toLevel(res.data());
      } catch (err) {
        if (statusOf(err) !== 404) throw this.failure(err, `reading the compatibility level of subject ${subject}`);
      }
    }
    const res = await this.http('GET', '/config', 'reading the global compatibility level');
    return toLevel(res.body);
  }

  /** Set a subject's compatibility level. */
  async setCompatibility(subject: string, level: CompatibilityLevel): Promise<void> {
    try {
      await this.api.Subject.updateConfig({ subject, body: { compatibility: level } });
    } catch (err) {
      throw this.failure(err, `setting the compatibility level of subject ${subject}`);
    }
  }

  /**
   * Delete a subject (soft; with `permanent`, then hard, so its name can be reused from version 1). Returns the
   * deleted versions; [] when there was no such subject. Ids already handed out keep resolving only as long as the
   * registry keeps their content.
   */
  async deleteSubject(subject: string, opts: { permanent?: boolean } = {}): Promise<number[]> {
    const path = `/subjects/${encodeURIComponent(subject)}`;
    const soft = await this.http('DELETE', path, `deleting subject ${subject}`, [404]);
    if (opts.permanent) await this.http('DELETE', `${path}?permanent=true`, `deleting subject ${subject} permanently`, [404]);
    return soft.status === 404 ? [] : (soft.body as number[]);
  }

  /** The endpoints the library does not cover, with the same credentials and error typing. */
  private async http(method: string, path: string, what: string, expected: number[] = []): Promise<{ status: number; body: unknown }> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers: { Accept: CONTENT_TYPE, ...(this.#authHeader ? { Authorization: this.#authHeader } : {}) },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const detail = (err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : cause?.message ?? cause?.code ?? (err as Error).message;
      throw unreachable(this.url, detail, err);
    }
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text for the message
    }
    if (res.ok || expected.includes(res.status)) return { status: res.status, body };
    const message = typeof body === 'object' && body && 'message' in body ? String((body as { message: unknown }).message) : text.slice(0, 200);
    throw this.failure({ name: 'ResponseError', status: res.status, message: `weir - ${message}` } satisfies ResponseErrorLike, what);
  }

  /** Type a failed request by what the caller does next. */
  private failure(err: unknown, what: string): Error {
    if (!isResponseError(err)) return err instanceof Error ? err : new Error(String(err));
    const detail = registryMessage(err);
    if (NETWORK_FAILURE.test(detail)) return unreachable(this.url, detail.replace(NETWORK_FAILURE, ''), err);
    if (err.status >= 500) {
      return new RegistryUnavailableError(this.url, `the schema registry at ${this.url} failed while ${what} (HTTP ${err.status}): ${detail}`, err.status, err);
    }
    if (err.status === 401 || err.status === 403) {
      return new RegistryAuthError(this.url, `the schema registry at ${this.url} refused our credentials while ${what} (HTTP ${err.status}); check its username and password`, err.status, err);
    }
    return new SchemaRegistryError(`the schema registry at ${this.url} refused ${what} (HTTP ${err.status}): ${detail}`, err.status, { cause: err });
  }
}

function unreachable(url: string, detail: string, cause: unknown): RegistryUnavailableError {
  return new RegistryUnavailableError(url, `cannot reach the schema registry at ${url} (${detail}); is it running and the address right?`, undefined, cause);
}

function isResponseError(err: unknown): err is ResponseErrorLike {
  return typeof err === 'object' && err !== null && (err as ResponseErrorLike).name === 'ResponseError' && typeof (err as ResponseErrorLike).status === 'number';
}

function statusOf(err: unknown): number | undefined {
  return isResponseError(err) ? err.status : undefined;
}

/** The registry's own message, without the client id prefix. */
function registryMessage(err: unknown): string {
  const message = err instanceof Error || isResponseError(err) ? (err as { message: string }).message : String(err);
  return message.replace(/^[^\s]* - /, '');
}

function toRegistered(data: any, subject: string): RegisteredSchema {
  return { subject: String(data.subject ?? subject), version: Number(data.version), id: Number(data.id), schema: String(data.schema) };
}

function toLevel(data: any): CompatibilityLevel {
  const raw = String(data?.compatibilityLevel ?? data?.compatibility ?? '').toUpperCase();
  if (!(COMPATIBILITY_LEVELS as readonly string[]).includes(raw)) {
    throw new SchemaRegistryError(`the schema registry returned an unknown compatibility level '${raw}'`);
  }
  return raw as CompatibilityLevel;
}

/** Bound every request, so a hung registry fails like a down one (mappersmith's own TimeoutMiddleware, inlined). */
function requestTimeout(ms: number): Middleware {
  return () => ({
    async prepareRequest(next) {
      const request = await next();
      return request.timeout() ? request : request.enhance({ timeout: ms });
    },
  });
}
