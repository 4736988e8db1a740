import { createWriteStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { writeOutputDir } from "../../../common/src/mod.js";
import { renderReportHtml } from "../report/report-html.js";
import type { SelectionReport } from "../report/types.js";

export const SELECTION_FILES = ["selected.jsonl", "report.json", "report.html"];

export type SelectionRecords = {
  /**
   * The user's records, by kernel column; or a reader that yields the records of the given
   * columns in that order (lean jobs re-read them from the data file instead of holding them).
   */
  records: Record<string, unknown>[] | ((columns: Uint32Array) => AsyncIterable<Record<string, unknown>>);
  order: Uint32Array;
  gains: Float64Array;
};

/**
 * DIR/selected.jsonl (each selected record with its original fields plus index, rank and gain,
 * in pick order), DIR/report.json and DIR/report.html, all or nothing.
 */
export async function writeSelection(
  dir: string,
  selection: SelectionRecords,
  report: SelectionReport,
  extra?: { names: string[]; write(tmp: string): Promise<void> },
): Promise<void> {
  await writeOutputDir(dir, [...SELECTION_FILES, ...(extra?.names ?? [])], async (tmp) => {
    await extra?.write(tmp);
    const out = createWriteStream(join(tmp, "selected.jsonl"));
    const records = selection.records;
    const inOrder: AsyncIterable<Record<string, unknown>> | Iterable<Record<string, unknown>> =
      typeof records === "function" ? records(selection.order) : Array.from(selection.order, (j) => records[j]);
    let k = 0;
    for await (const record of inOrder) {
      const j = selection.order[k];
      const line = JSON.stringify({ ...record, index: j, rank: k + 1, gain: selection.gains[k] }, jsonSafe);
      k++;
      if (!out.write(line + "\n")) await new Promise<void>((r) => out.once("drain", () => r()));
    }
    if (k !== selection.order.length) throw new Error(`wrote ${k} of ${selection.order.length} selected records`);
    out.end();
    await finished(out);
    await writeFile(join(tmp, "report.json"), JSON.stringify(report, null, 1) + "\n");
    await writeFile(join(tmp, "report.html"), renderReportHtml(report));
  });
}

/** Parquet rows can hold BigInt values; JSON cannot. */
function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? (Number.isSafeInteger(Number(value)) ? Number(value) : value.toString()) : value;
}
