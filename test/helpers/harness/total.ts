/**
 * The closing line of `npm test`: the unit and integration parts' reports (run-tests --report) added up
 * into one plain "N passed, N failed, N skipped" line, the form CI systems read as a test count.
 *
 *   node dist/test/helpers/harness/total.js REPORT.json [REPORT.json ...]
 */
import { readFileSync } from "node:fs";

type PartReport = { passed: number; failed: number; skipped: number };

function readReport(file: string): PartReport {
  const r = JSON.parse(readFileSync(file, "utf8")) as Partial<PartReport>;
  if (typeof r.passed !== "number" || typeof r.failed !== "number") throw new Error(`total: ${file} is not a run-tests report (no passed/failed counts)`);
  return { passed: r.passed, failed: r.failed, skipped: r.skipped ?? 0 };
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("total: give the run-tests reports to add up");
  process.exit(2);
}
const parts = files.map(readReport);
const sum = (k: keyof PartReport) => parts.reduce((s, p) => s + p[k], 0);
console.log(`${sum("passed")} passed, ${sum("failed")} failed, ${sum("skipped")} skipped`);
process.exitCode = sum("failed") > 0 || sum("passed") === 0 ? 1 : 0;
