/**
 * What a test leaves running (clusters, servers) can say what it was doing: when a test misses
 * its deadline, the harness appends every registered source's text to the timeout error, so a
 * hang in CI comes with the logs that explain it instead of a bare "did not finish".
 */
const sources = new Map<number, { name: string; describe: () => string }>();
let next = 0;

/** Registers a source of diagnostics; call the returned function when the thing is gone. */
export function registerDiagnostics(name: string, describe: () => string): () => void {
  const id = next++;
  sources.set(id, { name, describe });
  return () => void sources.delete(id);
}

/** The text of every live source (each one's failure to describe itself is reported, not thrown). */
export function liveDiagnostics(): string {
  const parts: string[] = [];
  for (const { name, describe } of sources.values()) {
    let text: string;
    try {
      text = describe();
    } catch (err) {
      text = `(could not describe: ${(err as Error).message})`;
    }
    parts.push(`=== ${name}\n${text}`);
  }
  return parts.join("\n");
}
