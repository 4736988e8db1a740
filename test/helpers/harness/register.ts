/**
 * Preloaded by the test runner (node --import) into every test file's process:
 * - test files that import "uvu" get the timed wrapper (timed-uvu.ts) instead, so every test of
 *   every file has a deadline, without any test file doing anything for it;
 * - every fast-check property runs with a seed: DELIFT_TEST_SEED (and DELIFT_TEST_PATH) when set,
 *   to replay a failure, else a fresh random one; a failure prints the line that replays it.
 */
import { register } from "node:module";
import fc from "fast-check";

register("./resolve-uvu.js", import.meta.url);

const seedText = process.env.DELIFT_TEST_SEED;
const path = process.env.DELIFT_TEST_PATH || undefined;
if (seedText !== undefined && seedText !== "" && !Number.isInteger(Number(seedText))) {
  throw new Error(`DELIFT_TEST_SEED=${seedText}: expected an integer`);
}
const seed = seedText ? Number(seedText) | 0 : (Math.random() * 2 ** 31) | 0;

const replay = (details: { seed: number; counterexamplePath: string | null }) =>
  `\n  replay: DELIFT_TEST_SEED=${details.seed}${details.counterexamplePath ? ` DELIFT_TEST_PATH=${details.counterexamplePath}` : ""} node dist/test/helpers/harness/run-tests.js <dir> --filter <file>`;

fc.configureGlobal({
  seed,
  ...(path ? { path } : {}),
  reporter: (details) => {
    const message = fc.defaultReportMessage(details);
    if (message !== undefined) throw new Error(message + replay(details));
  },
});
