/**
 * Module resolution hook (node:module register): "uvu" imported by anything but the wrapper
 * itself resolves to the wrapper, which re-exports uvu with a per-test timeout.
 */
const WRAPPER = new URL("./timed-uvu.js", import.meta.url).href;

type Resolved = { url: string; shortCircuit?: boolean; format?: string | null };
type Next = (specifier: string, context: { parentURL?: string }) => Promise<Resolved>;

export async function resolve(specifier: string, context: { parentURL?: string }, next: Next): Promise<Resolved> {
  if (specifier === "uvu" && context.parentURL !== WRAPPER) return { url: WRAPPER, shortCircuit: true, format: "module" };
  return next(specifier, context);
}
