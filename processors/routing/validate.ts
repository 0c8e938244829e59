/**
 * Domain validation of the routing inputs, as the sources' `validate` hooks use it: each function returns why a
 * record is invalid (it then goes to the dead-letter topic) or undefined when it is fine.
 *
 * Beyond what the Avro schema enforces, routing needs:
 * - the key to equal the value's tenantId (co-partitioning rests on it);
 * - ids and skills non-empty and free of U+0000, which separates the parts of every store key;
 * - eventTime a non-negative safe integer (it orders the queue, as fixed-width hex in store keys);
 * - agent events: a status on LOGIN and STATUS, none on LOGOUT; skills a string array; maxConcurrent an int >= 0;
 * - conversation events: skill and priority (a 32-bit int) on REQUESTED, both null on ENDED.
 */
import type { AgentEvent, ConversationEvent } from '../../schemas/types.js';

const AGENT_TYPES: readonly string[] = ['LOGIN', 'LOGOUT', 'STATUS'];
const STATUSES: readonly string[] = ['AVAILABLE', 'AWAY'];
const CONVERSATION_TYPES: readonly string[] = ['REQUESTED', 'ENDED'];
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

export function validateAgentEvent(key: string | null, value: AgentEvent | null): string | undefined {
  const common = validateCommon(key, value, 'agentId');
  if (common) return common;
  const ev = value as AgentEvent;
  if (!AGENT_TYPES.includes(ev.type)) return `unknown agent event type ${JSON.stringify(ev.type)}`;
  if (ev.type === 'LOGOUT') {
    if (ev.status !== null && ev.status !== undefined) return `status must be null on LOGOUT, got ${JSON.stringify(ev.status)}`;
    return undefined;
  }
  if (ev.status === null || ev.status === undefined) return `status is required on ${ev.type}`;
  if (!STATUSES.includes(ev.status)) return `unknown agent status ${JSON.stringify(ev.status)}`;
  if (!Array.isArray(ev.skills)) return `skills must be an array on ${ev.type}`;
  for (const s of ev.skills) {
    const bad = idProblem(s, 'skill');
    if (bad) return bad;
  }
  if (!Number.isInteger(ev.maxConcurrent) || ev.maxConcurrent < 0 || ev.maxConcurrent > INT32_MAX) {
    return `maxConcurrent must be an int >= 0, got ${JSON.stringify(ev.maxConcurrent)}`;
  }
  return undefined;
}

export function validateConversationEvent(key: string | null, value: ConversationEvent | null): string | undefined {
  const common = validateCommon(key, value, 'conversationId');
  if (common) return common;
  const ev = value as ConversationEvent;
  if (!CONVERSATION_TYPES.includes(ev.type)) return `unknown conversation event type ${JSON.stringify(ev.type)}`;
  if (ev.type === 'ENDED') {
    if (ev.skill !== null && ev.skill !== undefined) return `skill must be null on ENDED, got ${JSON.stringify(ev.skill)}`;
    if (ev.priority !== null && ev.priority !== undefined) return `priority must be null on ENDED, got ${JSON.stringify(ev.priority)}`;
    return undefined;
  }
  if (ev.skill === null || ev.skill === undefined) return 'skill is required on REQUESTED';
  const badSkill = idProblem(ev.skill, 'skill');
  if (badSkill) return badSkill;
  if (ev.priority === null || ev.priority === undefined) return 'priority is required on REQUESTED';
  if (!Number.isInteger(ev.priority) || ev.priority < INT32_MIN || ev.priority > INT32_MAX) {
    return `priority must be a 32-bit int, got ${JSON.stringify(ev.priority)}`;
  }
  return undefined;
}

function validateCommon(key: string | null, value: unknown, idField: 'agentId' | 'conversationId'): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'the value is not a record';
  const v = value as { [field: string]: unknown };
  for (const field of ['eventId', 'tenantId', idField]) {
    const bad = idProblem(v[field], field);
    if (bad) return bad;
  }
  if (key !== v.tenantId) return `the key ${JSON.stringify(key)} differs from tenantId ${JSON.stringify(v.tenantId)}`;
  const t = v.eventTime;
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) return `eventTime must be a non-negative integer (ms), got ${String(t)}`;
  return undefined;
}

function idProblem(v: unknown, field: string): string | undefined {
  if (typeof v !== 'string' || v.length === 0) return `${field} must be a non-empty string`;
  if (v.includes('\u0000')) return `${field} must not contain U+0000`;
  return undefined;
}
