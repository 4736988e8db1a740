import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { symlinkSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "../helpers/paths.js";

const Newcomer = suite("a newcomer's first commands (npm test without nats-server, no npm warnings)");

/** A PATH with node, npm and sh only: what a fresh machine has before nats-server is installed. */
function pathWithoutNatsServer(dir: string): string {
  const which = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).stdout.trim();
  for (const cmd of ["node", "npm", "sh"]) symlinkSync(which(cmd), join(dir, cmd));
  return dir;
}

Newcomer("npm test without nats-server on the PATH stops at once with one line naming it and its install command", () => {
  const bin = tempDir("delift-nonats-");
  try {
    const started = Date.now();
    const run = spawnSync("npm", ["test"], { cwd: ROOT, encoding: "utf8", env: { ...process.env, PATH: pathWithoutNatsServer(bin.path) }, timeout: 60_000 });
    const elapsed = Date.now() - started;
    assert.is(run.status, 1, `exit status ${run.status}\n${run.stdout}\n${run.stderr}`);
    const errLines = run.stderr.split("\n").filter((l) => l.trim() !== "");
    assert.is(errLines.length, 1, `expected one line on stderr, got:\n${run.stderr}`);
    assert.match(errLines[0], /nats-server/);
    assert.match(errLines[0], /apt-get install -y nats-server/);
    // It stopped before the build: nothing but npm's script banner on stdout, and no stack trace.
    assert.not.match(run.stdout + run.stderr, /tsc|ENOENT|at .*\.js:\d+/);
    assert.ok(elapsed < 15_000, `took ${elapsed} ms`);
  } finally {
    bin.cleanup();
  }
});

Newcomer("with nats-server on the PATH the check passes silently", () => {
  const run = spawnSync(process.execPath, [join(ROOT, "test", "prerequisites.mjs")], { encoding: "utf8" });
  assert.is(run.status, 0, run.stderr);
  assert.is(run.stderr, "");
});

Newcomer("npm prints no warning for a plain command in the project (no unknown .npmrc keys)", () => {
  const run = spawnSync("npm", ["pkg", "get", "name"], { cwd: ROOT, encoding: "utf8" });
  assert.is(run.status, 0, run.stderr);
  assert.not.match(run.stderr, /npm warn/i, run.stderr);
});

Newcomer.run();
