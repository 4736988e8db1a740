/** One line of `delift doctor`: what was checked, how it went, and what it found or what to do. */
export type CheckStatus = "ok" | "warn" | "fail" | "skip" | "note";
export type CheckResult = { status: CheckStatus; check: string; detail: string };

export const ok = (check: string, detail: string): CheckResult => ({ status: "ok", check, detail });
export const warn = (check: string, detail: string): CheckResult => ({ status: "warn", check, detail });
export const fail = (check: string, detail: string): CheckResult => ({ status: "fail", check, detail });
export const skip = (check: string, detail: string): CheckResult => ({ status: "skip", check, detail });
export const note = (check: string, detail: string): CheckResult => ({ status: "note", check, detail });

const LABEL: Record<CheckStatus, string> = { ok: "ok  ", warn: "WARN", fail: "FAIL", skip: "skip", note: "note" };

export function formatResult(r: CheckResult, width: number): string {
  return `${LABEL[r.status]}  ${r.check.padEnd(width)}  ${r.detail}`;
}

/** Exit code: 1 when any check failed; warnings and skipped checks do not fail the doctor. */
export function exitCode(results: CheckResult[]): number {
  return results.some((r) => r.status === "fail") ? 1 : 0;
}

/** The innermost message of an error and its causes (library errors wrap the server's reason). */
export function reason(err: unknown): string {
  const messages: string[] = [];
  for (let e: unknown = err; e instanceof Error && messages.length < 4; e = e.cause) {
    if (!messages.some((m) => m.includes(e instanceof Error ? e.message : ""))) messages.push(e.message);
  }
  return messages.length ? messages.join(": ") : String(err);
}
