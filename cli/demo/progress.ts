/**
 * Live progress of the main job on stderr: bars (cli-progress) on a terminal, else one plain line every two seconds,
 * so logs and CI stay readable. It counts what the workers and sinks report: records produced, input records
 * processed per application, outputs committed, dead letters, and the records the sinks took and the rows (or
 * Redis fields) they wrote.
 */
import cliProgress from 'cli-progress';
import type { ApplicationName } from '../../topologies/index.js';
import { APP_NAMES } from './plan.js';

interface AppCounts {
  expected: number;
  processed: number;
  outputs: number;
  deadLetters: number;
}

const OUTPUT_NOUN: Record<ApplicationName, string> = { routing: 'decisions', trades: 'positions+ledger', payments: 'reconciliations' };

export class DemoProgress {
  private produced = 0;
  private toProduce = 0;
  private readonly apps = new Map<ApplicationName, AppCounts>(APP_NAMES.map((a) => [a, { expected: 0, processed: 0, outputs: 0, deadLetters: 0 }]));
  private readonly sinks = new Map<string, { records: number; rows: number }>();
  private readonly started = Date.now();
  private multibar: cliProgress.MultiBar | null = null;
  private bars = new Map<string, cliProgress.SingleBar>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  get isTTY(): boolean {
    return this.stream.isTTY === true;
  }

  /** A line above the bars (or a plain line). */
  note(line: string): void {
    if (this.multibar) this.multibar.log(`${line}\n`);
    else this.stream.write(`${line}\n`);
  }

  start(toProduce: number, expected: Record<ApplicationName, number>, sinkNames: string[]): void {
    this.toProduce = toProduce;
    for (const a of APP_NAMES) this.apps.get(a)!.expected = expected[a];
    for (const s of sinkNames) this.sinks.set(s, { records: 0, rows: 0 });
    if (this.isTTY) {
      this.multibar = new cliProgress.MultiBar(
        { stream: this.stream, hideCursor: true, clearOnComplete: false, fps: 5, autopadding: true, format: ' {label} |{bar}| {value}/{total} {detail}' },
        cliProgress.Presets.shades_classic,
      );
      this.bars.set('produced', this.multibar.create(toProduce, 0, { label: 'produced', detail: 'records' }));
      for (const a of APP_NAMES) this.bars.set(a, this.multibar.create(expected[a], 0, { label: a.padEnd(8), detail: '' }));
      this.bars.set('sinks', this.multibar.create(0, 0, { label: 'sinks   ', detail: '' }, { format: ' {label} {detail}' }));
      this.timer = setInterval(() => this.render(), 200);
    } else {
      this.timer = setInterval(() => this.stream.write(`${this.line()}\n`), 2000);
    }
    this.timer.unref();
  }

  addExpected(app: ApplicationName, n: number): void {
    this.apps.get(app)!.expected += n;
    this.bars.get(app)?.setTotal(this.apps.get(app)!.expected);
  }

  addToProduce(n: number): void {
    this.toProduce += n;
    this.bars.get('produced')?.setTotal(this.toProduce);
  }

  onProduced(n: number): void {
    this.produced += n;
  }

  onProcessed(app: ApplicationName, n: number): void {
    this.apps.get(app)!.processed += n;
  }

  onOutputs(app: ApplicationName, n: number): void {
    this.apps.get(app)!.outputs += n;
  }

  onDeadLetter(app: ApplicationName): void {
    this.apps.get(app)!.deadLetters++;
  }

  /** A sink flushed `records` records, writing `rows` rows or keys. */
  onSinkFlush(sink: string, records: number, rows: number): void {
    const s = this.sinks.get(sink) ?? { records: 0, rows: 0 };
    this.sinks.set(sink, { records: s.records + records, rows: s.rows + rows });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.multibar) {
      this.render();
      this.multibar.stop();
      this.multibar = null;
    } else {
      this.stream.write(`${this.line()}\n`);
    }
  }

  private render(): void {
    this.bars.get('produced')?.update(this.produced);
    for (const a of APP_NAMES) {
      const c = this.apps.get(a)!;
      this.bars.get(a)?.update(Math.min(c.processed, c.expected), { detail: `in | ${c.outputs} ${OUTPUT_NOUN[a]} | ${c.deadLetters} dead letters` });
    }
    this.bars.get('sinks')?.update(0, { detail: this.sinkText() });
  }

  private sinkText(): string {
    return [...this.sinks].map(([name, s]) => `${name} ${s.records} records → ${s.rows} rows`).join(' | ');
  }

  private line(): string {
    const secs = ((Date.now() - this.started) / 1000).toFixed(1);
    const apps = APP_NAMES.map((a) => {
      const c = this.apps.get(a)!;
      return `${a} ${c.processed}/${c.expected} in, ${c.outputs} out, ${c.deadLetters} dlq`;
    });
    return `[${secs} s] produced ${this.produced}/${this.toProduce} | ${apps.join(' | ')} | sinks: ${this.sinkText()}`;
  }
}
