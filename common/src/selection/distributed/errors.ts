/**
 * Errors of distributed selection. Callers branch on the class (or on `name` once an error has
 * crossed a process boundary), never on the message text.
 */
import type { ErrorOptions } from "../../errors.js";

/** A host stopped answering for good (its process died, it left NATS): its shards go elsewhere. */
export class HostLostError extends Error {
  constructor(
    readonly host: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "HostLostError";
  }
}

/** A host does not hold the shard a request names (it restarted): the shard is loaded again. */
export class ShardNotLoadedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ShardNotLoadedError";
  }
}

/** No live host is left to hold a shard. */
export class NoShardHostsError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NoShardHostsError";
  }
}

/** A host failed the same shard too often, or answered something that does not check out. */
export class ShardFailedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ShardFailedError";
  }
}

export function isHostLostError(err: unknown): err is HostLostError {
  return err instanceof HostLostError || (err instanceof Error && err.name === "HostLostError");
}
