/**
 * Steady load: the generated stream (cli/demo/stream.ts) sent at an even rate in small chunks through the main job's
 * StreamProducer (Avro through the registry, the Java client's partitioning, malformed records spoiled).
 * `pause()` holds it between two chunks — while the broker restarts: the producer is idempotent, but a chunk whose
 * send failed could only be sent again as new records, which would change the input the checks compare with.
 */
import type { DemoRecord, StreamProducer } from '../../cli/demo/stream.js';

export class SteadyLoad {
  sent = 0;
  private paused: { resume: Promise<void>; release: () => void } | null = null;
  private inFlight: Promise<void> = Promise.resolve();
  private pausedMs = 0;
  /** settles when every record is sent (rejects on a send that failed) */
  readonly done: Promise<void>;

  constructor(
    private readonly producer: StreamProducer,
    private readonly records: readonly DemoRecord[],
    private readonly perSecond: number,
    private readonly signal: AbortSignal,
  ) {
    this.done = this.run();
    this.done.catch(() => undefined);
  }

  /** Resolves once no chunk is in flight; nothing is sent until resume(). */
  async pause(): Promise<void> {
    if (!this.paused) {
      let release!: () => void;
      const resume = new Promise<void>((r) => (release = r));
      this.paused = { resume, release };
    }
    await this.inFlight.catch(() => undefined);
  }

  resume(): void {
    this.paused?.release();
    this.paused = null;
  }

  private async run(): Promise<void> {
    const started = Date.now();
    const chunk = Math.max(1, Math.round(this.perSecond / 5));
    while (this.sent < this.records.length) {
      if (this.paused) {
        const t = Date.now();
        await this.paused.resume;
        this.pausedMs += Date.now() - t;
      }
      // on schedule: `sent` records should have taken sent / perSecond seconds (pauses not counted)
      const due = started + this.pausedMs + (1000 * this.sent) / this.perSecond;
      if (due > Date.now()) {
        await new Promise((r) => setTimeout(r, due - Date.now()));
        continue; // a pause may have begun meanwhile
      }
      const part = this.records.slice(this.sent, this.sent + chunk);
      this.inFlight = this.producer.send(part, this.signal, () => undefined, part.length);
      await this.inFlight;
      this.sent += part.length;
    }
  }
}
