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
