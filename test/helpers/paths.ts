import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

/** Repository root, from dist/test/helpers/ (compiled) or test/helpers/ (source). */
const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = here.includes(`${"/"}dist${"/"}`) ? join(here, "..", "..", "..") : join(here, "..", "..");
export const FIXTURES = join(ROOT, "test", "fixtures");
export const TINY_MODEL = join(ROOT, "models", "tiny");

export function tempDir(prefix = "delift-test-"): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}
