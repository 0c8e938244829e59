/**
 * Progress of a long command on stderr: a bar (cli-progress) on a terminal, else a plain line every few seconds
 * (logs and CI keep something readable). stdout stays for the command's result.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** `done` so far (absolute, not a delta). */
  update(done: number): void;
  setTotal(total: number): void;
  stop(): void;
}

export interface ProgressOptions {
  label: string;
  unit: string;
  total?: number;
  /** Seconds between plain lines; default 2. */
  everySeconds?: number;
  stream?: NodeJS.WriteStream;
}

export function startProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  return stream.isTTY ? barProgress(opts, stream) : lineProgress(opts, stream);
}

function barProgress(opts: ProgressOptions, stream: NodeJS.WriteStream): Progress {
  let total = opts.total;
  const format = () =>
    total === undefined
      ? `${opts.label} {value} ${opts.unit} | {speed}/s`
      : `${opts.label} |{bar}| {value}/{total} ${opts.unit} | {speed}/s | eta {eta_formatted}`;
  const bar = new cliProgress.SingleBar(
    { stream, format: format(), hideCursor: true, clearOnComplete: false, etaBuffer: 50, fps: 5 },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  const speed = (done: number) => Math.round(done / Math.max(0.001, (Date.now() - started) / 1000));
  bar.start(total ?? 0, 0, { speed: 0 });
  return {
    update: (done) => bar.update(done, { speed: speed(done) }),
    setTotal: (t) => {
      total = t;
      bar.setTotal(t);
    },
    stop: () => bar.stop(),
  };
}

function lineProgress(opts: ProgressOptions, stream: NodeJS.WriteStream): Progress {
  let total = opts.total;
  let done = 0;
  let printed = -1;
  const started = Date.now();
  const print = () => {
    if (done === printed) return;
    printed = done;
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    const pct = total ? ` (${Math.floor((100 * done) / total)}%)` : '';
    stream.write(`${opts.label} ${done}${total !== undefined ? `/${total}` : ''} ${opts.unit}${pct}, ${Math.round(done / secs)}/s\n`);
  };
  const timer = setInterval(print, (opts.everySeconds ?? 2) * 1000);
  timer.unref();
  return {
    update: (d) => {
      done = d;
    },
    setTotal: (t) => {
      total = t;
    },
    stop: () => {
      clearInterval(timer);
    },
  };
}
