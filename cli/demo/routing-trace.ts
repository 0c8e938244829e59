/**
 * The order in which the routing application handled its inputs and emitted its decisions, recorded through its
 * serdes: a task decodes each input record right before processing it and encodes each decision as the processor
 * forwards it, one record at a time. Per tenant (one task holds a tenant) the trace is therefore exactly the
 * processing order, which the capacity replay needs: agent and conversation events are two topics, and a worker
 * interleaves them in fetch order, which no offset or timestamp records.
 * A task that aborts a transaction processes records again: the trace then holds them twice and is not exact
 * (the summary says so instead of checking).
 */
import type { Serde } from '../../runtime/serde.js';
import type { SerdeFor } from '../../topologies/index.js';
import type { AgentEvent, ConversationEvent, RoutingDecision } from '../../schemas/types.js';

export type TraceEntry =
  | { kind: 'in'; topic: 'agent-events'; value: AgentEvent }
  | { kind: 'in'; topic: 'conversation-events'; value: ConversationEvent }
  | { kind: 'out'; value: RoutingDecision };

export class RoutingTrace {
  readonly entries: TraceEntry[] = [];

  /** The serdes of the routing topology, recording what passes through them. */
  wrap(serdeFor: SerdeFor): SerdeFor {
    return <T>(topic: string): Serde<T> => {
      const inner = serdeFor<T>(topic);
      if (topic === 'agent-events' || topic === 'conversation-events') {
        return {
          serialize: (v, ctx) => inner.serialize(v, ctx),
          deserialize: (data, ctx) => {
            const v = inner.deserialize(data, ctx);
            const record = (value: T) => {
              this.entries.push({ kind: 'in', topic, value } as TraceEntry);
              return value;
            };
            return v instanceof Promise ? v.then(record) : record(v);
          },
        };
      }
      if (topic === 'routing-decisions') {
        return {
          serialize: (v, ctx) => {
            this.entries.push({ kind: 'out', value: v as RoutingDecision });
            return inner.serialize(v, ctx);
          },
          deserialize: (data, ctx) => inner.deserialize(data, ctx),
        };
      }
      return inner;
    };
  }
}
