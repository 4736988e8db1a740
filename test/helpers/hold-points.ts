import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./paths.js";

/**
 * The hold points for tests (DELIFT_HOLD_AT=planning|scoring|selecting|writing: the process prints
 * "delift: holding at <point>" on stderr and waits there) are the runtime's to implement. Tests
 * that need them check first: null when the build has the hook, else why those tests cannot run.
 */
export function holdPointsMissing(): string | null {
  const dirs = ["cli/src", "common/src", "coordinator/src", "worker/src"].map((d) => join(ROOT, d));
  return dirs.some(mentionsHook) ? null : "DELIFT_HOLD_AT is not implemented in this build (no mention in cli/, common/, coordinator/ or worker/ sources)";
}

function mentionsHook(dir: string): boolean {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return false;
  }
  for (const e of entries) {
    const path = join(dir, e);
    if (statSync(path).isDirectory()) {
      if (mentionsHook(path)) return true;
    } else if (e.endsWith(".ts") && readFileSync(path, "utf8").includes("DELIFT_HOLD_AT")) {
      return true;
    }
  }
  return false;
}

/**
 * Waits for the process to announce the hold; fails at once (not at the deadline) when it ends
 * without holding there, which means the hook is missing for that command.
 */
export async function waitForHold(p: { waitFor(re: RegExp, ms?: number): Promise<void>; wait(): Promise<number | null>; log: string; name: string }, point: string, timeoutMs = 90_000): Promise<void> {
  await Promise.race([
    p.waitFor(new RegExp(`delift: holding at ${point}`), timeoutMs),
    p.wait().then((code) => {
      throw new Error(`${p.name} ended (exit ${code}) without holding at ${point}: DELIFT_HOLD_AT=${point} is not implemented for it\n${p.log.slice(-2000)}`);
    }),
  ]);
}
