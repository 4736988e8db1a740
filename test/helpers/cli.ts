import * as assert from "uvu/assert";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { CliProcess } from "./cluster.js";

/** Runs the delift CLI to its end; its exit code and everything it printed. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; log: string }> {
  const p = CliProcess.spawn("delift", args, env);
  const code = await p.wait();
  return { code, log: p.log };
}

/** The run's own account of the tile store: "N prompts scored in S s (C tiles computed, R reused from the tile store)". */
export function tileCounts(log: string): { prompts: number; computed: number; reused: number } {
  const m = /^(\d+) prompts scored in [\d.]+ s \((\d+) tiles computed, (\d+) reused from the tile store\)$/m.exec(log);
  assert.ok(m, `no tile count line in the output:\n${log}`);
  return { prompts: Number(m[1]), computed: Number(m[2]), reused: Number(m[3]) };
}

/** Tile files in a store directory (shards of two hex digits, *.tile). */
export function storedTileFiles(store: string): string[] {
  if (!existsSync(store)) return [];
  return readdirSync(store)
    .filter((d) => /^[0-9a-f]{2}$/.test(d))
    .flatMap((d) => readdirSync(join(store, d)).filter((f) => f.endsWith(".tile")));
}

/** Polls until `check` returns a value (a file appeared, a count was reached); fails after `timeoutMs`. */
export async function waitUntil<T>(what: string, check: () => T | null | undefined | false, timeoutMs = 60_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
