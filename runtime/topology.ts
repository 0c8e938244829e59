import { TopologyError } from './errors.js';
import type { ProcessorSupplier } from './processor.js';
import type { Serde } from './serde.js';
import type { StoreSpec } from '../state/store.js';

export interface SourceOptions<K, V> {
  topics: string[];
  keySerde: Serde<K>;
  valueSerde: Serde<V>;
  /** The partition count the topics must have; checked at build time across co-partitioned sources and at start against the broker. */
  partitions?: number;
  /** Returns why a decoded record is invalid (it goes to the dead-letter topic), or nothing when it is fine. */
  validate?: (key: K, value: V) => string | undefined | void;
}

export interface SinkOptions<K, V> {
  topic: string;
  keySerde: Serde<K>;
  valueSerde: Serde<V>;
}

export type TopologyNode =
  | { kind: 'source'; name: string; options: SourceOptions<unknown, unknown>; children: string[] }
  | { kind: 'processor'; name: string; supplier: ProcessorSupplier; parents: string[]; children: string[]; stores: string[] }
  | { kind: 'sink'; name: string; options: SinkOptions<unknown, unknown>; parents: string[] };

/** A connected part of the topology: its input topics are co-partitioned and meet in one task per partition. */
export interface SubTopology {
  id: number;
  sourceTopics: string[];
  /** Node names in a parents-before-children order. */
  nodes: string[];
  stores: string[];
  /** Declared partition count, if any source declared one. */
  partitions?: number;
}

/** A validated, immutable topology. Build it with `TopologyBuilder`. */
export class Topology {
  constructor(
    readonly nodes: ReadonlyMap<string, TopologyNode>,
    readonly stores: ReadonlyMap<string, StoreSpec>,
    readonly subTopologies: readonly SubTopology[],
  ) {}

  get sourceTopics(): string[] {
    return this.subTopologies.flatMap((s) => s.sourceTopics);
  }

  get sinkTopics(): string[] {
    const topics = new Set<string>();
    for (const n of this.nodes.values()) if (n.kind === 'sink') topics.add(n.options.topic);
    return [...topics];
  }

  subTopologyOfTopic(topic: string): SubTopology {
    const s = this.subTopologies.find((st) => st.sourceTopics.includes(topic));
    if (!s) throw new TopologyError(`topic '${topic}' is not an input of this topology`);
    return s;
  }

  sourceNodeOfTopic(topic: string): Extract<TopologyNode, { kind: 'source' }> {
    for (const n of this.nodes.values()) if (n.kind === 'source' && n.options.topics.includes(topic)) return n;
    throw new TopologyError(`topic '${topic}' has no source node`);
  }

  describe(): string {
    return this.subTopologies
      .map((s) => `sub-topology ${s.id}: topics [${s.sourceTopics.join(', ')}] nodes [${s.nodes.join(' -> ')}] stores [${s.stores.join(', ')}]`)
      .join('\n');
  }
}

/**
 * Builds a topology as Kafka Streams' Processor API does: sources, processors, sinks and state stores by name.
 * Parents may be named before they are added; `build()` validates everything and fails with a TopologyError
 * that names the offending node before anything runs.
 */
export class TopologyBuilder {
  private readonly nodes = new Map<string, TopologyNode>();
  private readonly stores = new Map<string, StoreSpec>();
  private readonly storeLinks: Array<{ store: string; processor: string }> = [];

  addSource<K, V>(name: string, options: SourceOptions<K, V>): this {
    this.addNode({ kind: 'source', name, options: options as SourceOptions<unknown, unknown>, children: [] });
    return this;
  }

  addProcessor<KIn, VIn, KOut, VOut>(
    name: string,
    supplier: ProcessorSupplier<KIn, VIn, KOut, VOut>,
    ...parents: string[]
  ): this {
    if (parents.length === 0) throw new TopologyError(`processor '${name}' needs at least one parent`);
    this.addNode({ kind: 'processor', name, supplier: supplier as ProcessorSupplier, parents, children: [], stores: [] });
    return this;
  }

  addSink<K, V>(name: string, options: SinkOptions<K, V>, ...parents: string[]): this {
    if (parents.length === 0) throw new TopologyError(`sink '${name}' needs at least one parent`);
    this.addNode({ kind: 'sink', name, options: options as SinkOptions<unknown, unknown>, parents });
    return this;
  }

  /** Declare a store and connect it to the named processors. */
  addStateStore(spec: StoreSpec<any, any>, ...processors: string[]): this {
    if (this.stores.has(spec.name)) throw new TopologyError(`state store '${spec.name}' is declared twice`);
    if (!/^[A-Za-z0-9._-]+$/.test(spec.name)) {
      throw new TopologyError(`state store name '${spec.name}' may use only letters, digits, '.', '_' and '-'`);
    }
    this.stores.set(spec.name, spec as StoreSpec);
    for (const p of processors) this.storeLinks.push({ store: spec.name, processor: p });
    return this;
  }

  /** Connect already declared stores to a processor. */
  connectProcessorAndStateStores(processor: string, ...stores: string[]): this {
    for (const s of stores) this.storeLinks.push({ store: s, processor });
    return this;
  }

  build(): Topology {
    const nodes = new Map<string, TopologyNode>();
    for (const [name, n] of this.nodes) {
      nodes.set(name, n.kind === 'source' ? { ...n, children: [] } : n.kind === 'processor' ? { ...n, children: [], stores: [] } : { ...n });
    }
    if (![...nodes.values()].some((n) => n.kind === 'source')) throw new TopologyError('a topology needs at least one source');

    // Wire children from parents, naming unknown parents.
    for (const n of nodes.values()) {
      if (n.kind === 'source') continue;
      for (const p of n.parents) {
        const parent = nodes.get(p);
        if (!parent) throw new TopologyError(`${n.kind} '${n.name}' names unknown parent '${p}'`);
        if (parent.kind === 'sink') throw new TopologyError(`${n.kind} '${n.name}' cannot have sink '${p}' as parent`);
        parent.children.push(n.name);
      }
    }

    // Stores: every link names a known store and a known processor.
    for (const { store, processor } of this.storeLinks) {
      if (!this.stores.has(store)) throw new TopologyError(`processor '${processor}' is connected to unknown state store '${store}'`);
      const p = nodes.get(processor);
      if (!p) throw new TopologyError(`state store '${store}' is connected to unknown processor '${processor}'`);
      if (p.kind !== 'processor') throw new TopologyError(`state store '${store}' can only be connected to a processor, not ${p.kind} '${processor}'`);
      if (!p.stores.includes(store)) p.stores.push(store);
    }

    // Topics: each read by one source only.
    const topicOwner = new Map<string, string>();
    for (const n of nodes.values()) {
      if (n.kind !== 'source') continue;
      if (n.options.topics.length === 0) throw new TopologyError(`source '${n.name}' reads no topic`);
      for (const t of n.options.topics) {
        const other = topicOwner.get(t);
        if (other) throw new TopologyError(`topic '${t}' is read by two sources, '${other}' and '${n.name}'`);
        topicOwner.set(t, n.name);
      }
    }

    const order = topologicalOrder(nodes);
    const subTopologies = splitSubTopologies(nodes, order);
    for (const n of nodes.values()) {
      if (n.kind === 'processor' && !subTopologies.some((s) => s.nodes.includes(n.name))) {
        throw new TopologyError(`processor '${n.name}' is not reachable from any source`);
      }
    }
    return new Topology(nodes, new Map(this.stores), subTopologies);
  }

  private addNode(node: TopologyNode): void {
    if (!node.name) throw new TopologyError('a node needs a name');
    if (this.nodes.has(node.name)) throw new TopologyError(`node name '${node.name}' is used twice`);
    this.nodes.set(node.name, node);
  }
}

/** Kahn's algorithm; a leftover node means a cycle, which is named. */
function topologicalOrder(nodes: Map<string, TopologyNode>): string[] {
  const indegree = new Map<string, number>();
  for (const n of nodes.values()) indegree.set(n.name, n.kind === 'source' ? 0 : n.parents.length);
  const ready = [...nodes.values()].filter((n) => indegree.get(n.name) === 0).map((n) => n.name);
  const order: string[] = [];
  while (ready.length > 0) {
    const name = ready.shift()!;
    order.push(name);
    const n = nodes.get(name)!;
    if (n.kind === 'sink') continue;
    for (const c of n.children) {
      const d = indegree.get(c)! - 1;
      indegree.set(c, d);
      if (d === 0) ready.push(c);
    }
  }
  if (order.length !== nodes.size) {
    const stuck = [...nodes.keys()].filter((n) => !order.includes(n));
    throw new TopologyError(`the topology has a cycle through ${stuck.map((s) => `'${s}'`).join(', ')}`);
  }
  return order;
}

/** Nodes linked by an edge or a shared store belong to one sub-topology (union-find). */
function splitSubTopologies(nodes: Map<string, TopologyNode>, order: string[]): SubTopology[] {
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(x, r);
    return r;
  };
  const union = (a: string, b: string) => parent.set(find(a), find(b));
  for (const name of nodes.keys()) parent.set(name, name);
  const storeUser = new Map<string, string>();
  for (const n of nodes.values()) {
    if (n.kind !== 'source') for (const p of n.parents) union(n.name, p);
    if (n.kind === 'processor') {
      for (const s of n.stores) {
        const other = storeUser.get(s);
        if (other) union(n.name, other);
        else storeUser.set(s, n.name);
      }
    }
  }
  const groups = new Map<string, string[]>();
  for (const name of order) {
    const r = find(name);
    groups.set(r, [...(groups.get(r) ?? []), name]);
  }
  const result: SubTopology[] = [];
  for (const names of groups.values()) {
    const sources = names.map((n) => nodes.get(n)!).filter((n): n is Extract<TopologyNode, { kind: 'source' }> => n.kind === 'source');
    if (sources.length === 0) continue;
    const declared = sources.filter((s) => s.options.partitions !== undefined);
    const counts = new Set(declared.map((s) => s.options.partitions));
    if (counts.size > 1) {
      throw new TopologyError(
        `co-partitioned sources must have the same partition count: ${declared
          .map((s) => `'${s.name}' (${s.options.topics.join(', ')}) has ${s.options.partitions}`)
          .join(', ')}`,
      );
    }
    const stores = new Set<string>();
    for (const n of names) {
      const node = nodes.get(n)!;
      if (node.kind === 'processor') node.stores.forEach((s) => stores.add(s));
    }
    result.push({
      id: result.length,
      sourceTopics: sources.flatMap((s) => s.options.topics),
      nodes: names,
      stores: [...stores],
      partitions: declared[0]?.options.partitions,
    });
  }
  return result;
}
