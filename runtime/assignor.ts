import { AssignerProtocol, type PartitionAssigner } from 'kafkajs';
import type { Topology } from './topology.js';

export const taskIdOf = (subTopologyId: number, partition: number): string => `${subTopologyId}_${partition}`;

/**
 * A kafkajs partition assigner that assigns tasks, not partitions.
 * Responsible for:
 * - giving partition p of every co-partitioned input topic to the same member (one task = one sub-topology partition);
 * - balancing tasks across members (counts differ by at most one);
 * - stickiness: a member keeps the tasks it reports owning, so a rebalance moves as few stores as it can.
 */
export function taskAssigner(topology: Topology, ownedTasks: () => string[]): PartitionAssigner {
  return ({ cluster }) => ({
    name: 'WeirTaskAssigner',
    version: 1,
    async assign({ members }) {
      const tasks: Array<{ id: string; sub: number; partition: number }> = [];
      for (const sub of topology.subTopologies) {
        const counts = sub.sourceTopics.map((t) => cluster.findTopicPartitionMetadata(t).length);
        const n = Math.max(...counts);
        for (let p = 0; p < n; p++) tasks.push({ id: taskIdOf(sub.id, p), sub: sub.id, partition: p });
      }
      const memberIds = members.map((m) => m.memberId).sort();
      const owned = new Map<string, string[]>();
      for (const m of members) {
        let prev: string[] = [];
        try {
          const meta = AssignerProtocol.MemberMetadata.decode(m.memberMetadata);
          if (meta?.userData && meta.userData.length > 0) prev = (JSON.parse(meta.userData.toString('utf8')) as { tasks?: string[] }).tasks ?? [];
        } catch {
          prev = [];
        }
        owned.set(m.memberId, prev);
      }
      const byMember = new Map<string, string[]>(memberIds.map((id) => [id, []]));
      const taken = new Set<string>();
      const cap = Math.ceil(tasks.length / Math.max(memberIds.length, 1));
      const known = new Set(tasks.map((t) => t.id));
      for (const id of memberIds) {
        for (const t of owned.get(id) ?? []) {
          if (!known.has(t) || taken.has(t) || byMember.get(id)!.length >= cap) continue;
          byMember.get(id)!.push(t);
          taken.add(t);
        }
      }
      const fewest = () => memberIds.reduce((a, b) => (byMember.get(b)!.length < byMember.get(a)!.length ? b : a));
      for (const t of tasks) {
        if (taken.has(t.id)) continue;
        byMember.get(fewest())!.push(t.id);
        taken.add(t.id);
      }
      // Even out: move from the fullest to the emptiest until counts differ by at most one.
      for (;;) {
        const most = memberIds.reduce((a, b) => (byMember.get(b)!.length > byMember.get(a)!.length ? b : a));
        const least = fewest();
        if (byMember.get(most)!.length - byMember.get(least)!.length <= 1) break;
        byMember.get(least)!.push(byMember.get(most)!.pop()!);
      }
      const taskById = new Map(tasks.map((t) => [t.id, t]));
      return memberIds.map((memberId) => {
        const assignment: Record<string, number[]> = {};
        for (const id of byMember.get(memberId)!) {
          const t = taskById.get(id)!;
          const sub = topology.subTopologies[t.sub]!;
          for (const topic of sub.sourceTopics) (assignment[topic] ??= []).push(t.partition);
        }
        return {
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment, userData: Buffer.alloc(0) }),
        };
      });
    },
    protocol({ topics }) {
      return {
        name: 'WeirTaskAssigner',
        metadata: AssignerProtocol.MemberMetadata.encode({
          version: 1,
          topics,
          userData: Buffer.from(JSON.stringify({ tasks: ownedTasks() })),
        }),
      };
    },
  });
}
