/**
 * A built application topology with its topics renamed, so a bench run has topics of its own (the topologies
 * take their names from the schema catalog: `trades`, `positions`, …, which the demo and the tests use on the
 * same broker).
 * - sources and sinks read and write the renamed topics; Avro serdes register under `<renamed topic>-value`;
 * - processors still see the catalog names: `recordMetadata().topic` is mapped back (the routing and payments
 *   processors tell their two inputs apart by it). Nothing else of the context changes.
 */
import { Topology, type TopologyNode } from '../runtime/topology.js';
import type { Processor, ProcessorContext, ProcessorSupplier } from '../runtime/processor.js';

export function renameTopics(topology: Topology, names: Readonly<Record<string, string>>): Topology {
  const rename = (t: string) => names[t] ?? t;
  const original = new Map(Object.entries(names).map(([from, to]) => [to, from]));
  const nodes = new Map<string, TopologyNode>();
  for (const [name, n] of topology.nodes) {
    if (n.kind === 'source') nodes.set(name, { ...n, options: { ...n.options, topics: n.options.topics.map(rename) } });
    else if (n.kind === 'sink') nodes.set(name, { ...n, options: { ...n.options, topic: rename(n.options.topic) } });
    else nodes.set(name, { ...n, supplier: withCatalogTopics(n.supplier, original) });
  }
  const subTopologies = topology.subTopologies.map((s) => ({ ...s, sourceTopics: s.sourceTopics.map(rename) }));
  return new Topology(nodes, topology.stores, subTopologies);
}

function withCatalogTopics(supplier: ProcessorSupplier, original: ReadonlyMap<string, string>): ProcessorSupplier {
  return () => {
    const p: Processor = supplier();
    const init = p.init?.bind(p);
    if (init) p.init = (ctx) => init(contextView(ctx, original));
    return p;
  };
}

function contextView(ctx: ProcessorContext, original: ReadonlyMap<string, string>): ProcessorContext {
  return {
    get applicationId() {
      return ctx.applicationId;
    },
    get taskId() {
      return ctx.taskId;
    },
    get partition() {
      return ctx.partition;
    },
    forward: (record, childName) => ctx.forward(record, childName),
    getStore: (name) => ctx.getStore(name),
    count: (name, n) => ctx.count(name, n),
    recordMetadata: () => {
      const m = ctx.recordMetadata();
      return m && { ...m, topic: original.get(m.topic) ?? m.topic };
    },
    currentStreamTime: () => ctx.currentStreamTime(),
    currentSystemTime: () => ctx.currentSystemTime(),
    schedule: (intervalMs, type, callback) => ctx.schedule(intervalMs, type, callback),
  };
}
