import { describe, expect, it } from 'vitest';
import { TopologyBuilder, TopologyError, Serdes, keyValueStore } from '../../index.js';

const src = { keySerde: Serdes.string(), valueSerde: Serdes.string() };
const noop = () => ({ process() {} });

describe('TopologyBuilder validation', () => {
  it('splits into sub-topologies by edges and shared stores', () => {
    const t = new TopologyBuilder()
      .addSource('a', { topics: ['ta'], ...src })
      .addSource('b', { topics: ['tb'], ...src })
      .addSource('c', { topics: ['tc'], ...src })
      .addProcessor('pa', noop, 'a')
      .addProcessor('pb', noop, 'b')
      .addProcessor('pc', noop, 'c')
      .addStateStore(keyValueStore('shared', Serdes.string(), Serdes.string()), 'pa', 'pb')
      .build();
    expect(t.subTopologies.map((s) => s.sourceTopics)).toEqual([['ta', 'tb'], ['tc']]);
    expect(t.subTopologies[0]!.stores).toEqual(['shared']);
  });

  it('names an unknown store', () => {
    expect(() => new TopologyBuilder().addSource('s', { topics: ['t'], ...src }).addProcessor('p', noop, 's').connectProcessorAndStateStores('p', 'nope').build()).toThrow(
      new TopologyError("processor 'p' is connected to unknown state store 'nope'"),
    );
  });

  it('names an unknown parent', () => {
    expect(() => new TopologyBuilder().addSource('s', { topics: ['t'], ...src }).addProcessor('p', noop, 'ghost').build()).toThrow(
      "processor 'p' names unknown parent 'ghost'",
    );
  });

  it('names the nodes of a cycle', () => {
    expect(() =>
      new TopologyBuilder().addSource('s', { topics: ['t'], ...src }).addProcessor('x', noop, 's', 'y').addProcessor('y', noop, 'x').build(),
    ).toThrow("the topology has a cycle through 'x', 'y'");
  });

  it('refuses co-partitioned sources with different partition counts', () => {
    expect(() =>
      new TopologyBuilder()
        .addSource('a', { topics: ['ta'], partitions: 12, ...src })
        .addSource('b', { topics: ['tb'], partitions: 6, ...src })
        .addProcessor('join', noop, 'a', 'b')
        .build(),
    ).toThrow("co-partitioned sources must have the same partition count: 'a' (ta) has 12, 'b' (tb) has 6");
  });

  it('refuses a topic read twice, a duplicate name and a topology without source', () => {
    expect(() => new TopologyBuilder().addSource('a', { topics: ['t'], ...src }).addSource('b', { topics: ['t'], ...src }).build()).toThrow(
      "topic 't' is read by two sources, 'a' and 'b'",
    );
    expect(() => new TopologyBuilder().addSource('a', { topics: ['t'], ...src }).addSource('a', { topics: ['u'], ...src })).toThrow("node name 'a' is used twice");
    expect(() => new TopologyBuilder().build()).toThrow('a topology needs at least one source');
  });
});
