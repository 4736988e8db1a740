/**
 * Turns Ctrl-C (SIGINT) and SIGTERM into an AbortSignal, so long work stops between model runs
 * and cleans up. A second Ctrl-C exits at once.
 */
export function abortOnSignals(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  let count = 0;
  const handler = (name: NodeJS.Signals) => {
    count++;
    if (count > 1) process.exit(130);
    process.stderr.write(`\n${name}: stopping; nothing half-written is kept (Ctrl-C again to exit at once)\n`);
    controller.abort(new Error(`interrupted by ${name}`));
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    signal: controller.signal,
    dispose() {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}
