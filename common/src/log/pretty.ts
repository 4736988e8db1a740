/**
 * The human log format: one line per record, the time first (ISO 8601, UTC), the level, the
 * message, then the fields as key=value. An unexpected error's stack follows on indented lines.
 *   2026-12-01T10:00:00.000Z INFO  tile 3f2a9c01d4e5 stored in 1.20 s job=j1 worker=w1
 */
const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const FIRST = ["job", "tile", "worker"];
const SKIP = new Set(["level", "time", "msg", "pid", "hostname", "err", "name"]);

export function formatPretty(record: Record<string, unknown>): string {
  const time = typeof record.time === "number" ? new Date(record.time).toISOString() : new Date().toISOString();
  const level = (LEVEL_NAMES[record.level as number] ?? String(record.level)).padEnd(5);
  const name = typeof record.name === "string" ? `[${record.name}] ` : "";
  let line = `${time} ${level} ${name}${typeof record.msg === "string" ? record.msg : ""}`;
  const keys = [...FIRST.filter((k) => k in record), ...Object.keys(record).filter((k) => !SKIP.has(k) && !FIRST.includes(k))];
  for (const k of keys) {
    const v = record[k];
    if (v === undefined) continue;
    line += ` ${k}=${typeof v === "string" && /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)}`;
  }
  const err = record.err as { stack?: string; message?: string } | undefined;
  if (err) line += "\n" + String(err.stack ?? err.message ?? JSON.stringify(err)).split("\n").map((l) => `    ${l}`).join("\n");
  return line + "\n";
}
