/**
 * A member started by `weir deploy` (--supervised) stops when its deploy is gone (killed), as if the deploy had sent
 * SIGTERM, so a killed deploy leaves no workers or sinks behind.
 */
export function stopWithParent(onGone: () => void): void {
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(watch);
      onGone();
      process.kill(process.pid, 'SIGTERM');
    }
  }, 1000);
  watch.unref();
}
