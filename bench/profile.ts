/**
 * Summarizes a V8 .cpuprofile (as written by `node --cpu-prof`): where the time goes, by area
 * (weir runtime, kafkajs, RocksDB binding, node internals, GC, idle) and the top functions by self
 * time, plus inclusive time of the functions on the commit and process paths.
 *
 *   tsx bench/profile.ts <file.cpuprofile> [--top 30]
 */
import fs from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  areas: Array<{ area: string; ms: number; pct: number }>;
  self: Array<{ fn: string; where: string; area: string; ms: number; pct: number }>;
  inclusive: Array<{ fn: string; where: string; ms: number; pct: number }>;
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

type Where = (cf: CallFrame) => string;

/**
 * Where a frame is, as `file:line`. tsx serves each .ts module as one line of JavaScript, so a frame of one
 * is mapped back through the source maps the variant saved beside its profile (sourcemaps.json).
 */
function locator(profileFile: string): Where {
  const maps = new Map<string, SourceMap>();
  try {
    const raw = JSON.parse(fs.readFileSync(path.join(path.dirname(profileFile), 'sourcemaps.json'), 'utf8')) as Record<string, SourceMapPayload>;
    for (const [url, payload] of Object.entries(raw)) maps.set(url, new SourceMap(payload));
  } catch {
    /* none saved: generated positions */
  }
  return (cf) => {
    if (!cf.url) return '';
    let u = cf.url.startsWith('file://') ? fileURLToPath(cf.url) : cf.url;
    if (path.isAbsolute(u)) u = path.relative(REPO_ROOT, u);
    u = u.replace(/^node_modules\//, '');
    const map = maps.get(cf.url);
    if (map) {
      const e = map.findEntry(cf.lineNumber, cf.columnNumber) as { originalLine?: number };
      if (e.originalLine !== undefined) return `${u}:${e.originalLine + 1}`;
    }
    return cf.lineNumber === 0 && u.endsWith('.ts') ? `${u}:1:${cf.columnNumber + 1}` : `${u}:${cf.lineNumber + 1}`;
  };
}

function areaOf(cf: CallFrame): string {
  const name = cf.functionName;
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'gc';
  if (name === '(program)') return 'program (native, outside JS)';
  if (name === '(root)') return 'root';
  const u = cf.url;
  if (!u) return 'native/builtin';
  if (u.startsWith('node:')) return 'node internals';
  if (u.includes('/node_modules/kafkajs/')) return 'kafkajs';
  if (u.includes('/node_modules/rocksdb/') || u.includes('/node_modules/abstract-leveldown/')) return 'rocksdb binding';
  if (u.includes('/node_modules/pino')) return 'pino';
  if (u.includes('/node_modules/tsx/') || u.includes('/node_modules/esbuild/')) return 'tsx (load time)';
  if (u.includes('/node_modules/')) return 'other packages';
  const rel = u.startsWith('file://') ? path.relative(REPO_ROOT, fileURLToPath(u)) : u;
  if (rel.startsWith('runtime/')) return 'weir runtime/';
  if (rel.startsWith('state/')) return 'weir state/';
  if (rel.startsWith('bench/')) return 'bench';
  if (rel.startsWith('test/')) return 'topology (test fixture)';
  return 'other';
}

/** Functions whose inclusive time tells the story of a weir worker's hot path. */
const INCLUSIVE_OF_INTEREST = [
  /^Worker\.eachBatch$|^eachBatch$/,
  /^Task\.process$|^process$/,
  /^commitCheckpoint$/,
  /^sendChunked$/,
  /^(TransactionalTaskProducer|AtLeastOnceTaskProducer)\.(send|commit)$|^(send|commit)$/,
  /^sendBatch$/,
  /^sendOffsets$/,
  /^(BufferedStore|RocksDbBackend|TypedKeyValueStore)\.(get|write|complete)$|^(get|write|complete)$/,
  /^runForward$|^deliver$/,
  /^partitionForKey$|^murmur2$/,
  /^(encode|decode|serialize|deserialize|parse)$/,
];

export function summarizeProfile(file: string, top = 30): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const where = locator(file);
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of prof.nodes) byId.set(n.id, n);
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // Duration of sample i: the time until the next sample (the last one gets the mean).
  const n = prof.samples.length;
  const durations = new Array<number>(n);
  for (let i = 0; i < n; i++) durations[i] = i + 1 < n ? prof.timeDeltas[i + 1]! : 0;
  const mean = n > 1 ? (prof.endTime - prof.startTime) / n : 0;
  if (n > 0) durations[n - 1] = mean;

  const key = (cf: CallFrame) => `${cf.functionName || '(anonymous)'}\u0000${where(cf)}`;
  const selfUs = new Map<string, { cf: CallFrame; us: number }>();
  const areaUs = new Map<string, number>();
  const inclUs = new Map<string, { cf: CallFrame; us: number }>();
  let total = 0;
  for (let i = 0; i < n; i++) {
    const node = byId.get(prof.samples[i]!)!;
    const d = durations[i]!;
    total += d;
    const k = key(node.callFrame);
    const s = selfUs.get(k) ?? { cf: node.callFrame, us: 0 };
    s.us += d;
    selfUs.set(k, s);
    const a = areaOf(node.callFrame);
    areaUs.set(a, (areaUs.get(a) ?? 0) + d);
    // inclusive: every distinct function on the sample's stack
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)!.callFrame;
      const fk = key(cf);
      if (seen.has(fk)) continue;
      seen.add(fk);
      const e = inclUs.get(fk) ?? { cf, us: 0 };
      e.us += d;
      inclUs.set(fk, e);
    }
  }
  const ms = (us: number) => us / 1000;
  const pct = (us: number) => (total > 0 ? (100 * us) / total : 0);
  const inclusive = [...inclUs.values()]
    .filter((e) => {
      const a = areaOf(e.cf);
      return (a.startsWith('weir') || a === 'kafkajs' || a === 'rocksdb binding' || a.startsWith('topology')) && INCLUSIVE_OF_INTEREST.some((re) => re.test(e.cf.functionName));
    })
    .sort((a, b) => b.us - a.us)
    .slice(0, 25)
    .map((e) => ({ fn: e.cf.functionName || '(anonymous)', where: where(e.cf), ms: ms(e.us), pct: pct(e.us) }));
  return {
    totalMs: ms(total),
    areas: [...areaUs].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, ms: ms(us), pct: pct(us) })),
    self: [...selfUs.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ fn: e.cf.functionName || '(anonymous)', where: where(e.cf), area: areaOf(e.cf), ms: ms(e.us), pct: pct(e.us) })),
    inclusive,
  };
}

export function formatSummary(title: string, s: ProfileSummary): string {
  const lines: string[] = [];
  lines.push(`${title}: ${(s.totalMs / 1000).toFixed(1)} s sampled`);
  lines.push('  by area (self time):');
  for (const a of s.areas) lines.push(`    ${a.pct.toFixed(1).padStart(5)}%  ${(a.ms / 1000).toFixed(2).padStart(7)} s  ${a.area}`);
  lines.push('  top functions by self time:');
  for (const f of s.self) lines.push(`    ${f.pct.toFixed(1).padStart(5)}%  ${f.fn}  ${f.where}  [${f.area}]`);
  if (s.inclusive.length > 0) {
    lines.push('  inclusive time (function and everything it calls synchronously):');
    for (const f of s.inclusive) lines.push(`    ${f.pct.toFixed(1).padStart(5)}%  ${f.fn}  ${f.where}`);
  }
  return lines.join('\n');
}

const invokedDirectly = (() => {
  try {
    return !!process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '30' } }, allowPositionals: true });
  if (positionals.length === 0) {
    console.error('usage: tsx bench/profile.ts <file.cpuprofile>... [--top N]');
    process.exit(2);
  }
  for (const f of positionals) console.log(formatSummary(path.basename(f), summarizeProfile(f, Number(values.top))));
}
