import { errorOf, isCoordinatorUnavailableError } from "../../../common/src/mod.js";

/** The coordinator stayed away longer than the client was willing to wait. */
export class CoordinatorGoneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CoordinatorGoneError";
  }
}

export type ReconnectOptions = {
  /** Give up after the coordinator has been away this long (default 10 minutes). */
  giveUpMs?: number;
  /** Where "lost"/"reconnected" notices go (default stderr). */
  say?: (line: string) => void;
  /** First wait, doubled up to maxWaitMs (defaults 500 ms, 5 s). */
  firstWaitMs?: number;
  maxWaitMs?: number;
};

/**
 * Keeps a client going through a coordinator restart: `attempt` is one call (or one stream,
 * consumed to its end); when it fails because the coordinator is unreachable (or the stream ended
 * early), the client says so once, waits with back-off and tries again, and says when it is back.
 * Any other error (a refused token, an unknown job) ends it at once.
 */
export async function withReconnect<T>(what: string, attempt: (reconnected: boolean) => Promise<T>, o: ReconnectOptions = {}): Promise<T> {
  const say = o.say ?? ((line: string) => void process.stderr.write(line + "\n"));
  const giveUpMs = o.giveUpMs ?? 600_000;
  let wait = o.firstWaitMs ?? 500;
  let lostAt: number | null = null;
  for (;;) {
    try {
      const result = await attempt(lostAt !== null);
      return result;
    } catch (raw) {
      const err = raw instanceof StreamEndedEarly ? raw : errorOf(raw);
      if (!(err instanceof StreamEndedEarly) && !isCoordinatorUnavailableError(err)) throw err;
      const now = Date.now();
      if (lostAt === null) {
        lostAt = now;
        say(`delift: lost the coordinator while ${what} (${err.message}); reconnecting`);
      } else if (now - lostAt > giveUpMs) {
        throw new CoordinatorGoneError(`the coordinator did not come back within ${Math.round(giveUpMs / 1000)} s (${err.message})`);
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, o.maxWaitMs ?? 5000);
    }
  }
}

/** A stream that ended before its last message (the coordinator stopped mid-stream): retry it. */
export class StreamEndedEarly extends Error {
  constructor(message = "the stream ended early") {
    super(message);
    this.name = "StreamEndedEarly";
  }
}
