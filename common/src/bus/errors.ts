/** A conditional KV write found another revision than expected (someone else wrote the key). */
export class KvRevisionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KvRevisionError";
  }
}

export function isKvRevisionError(err: unknown): err is KvRevisionError {
  return err instanceof KvRevisionError || (err instanceof Error && err.name === "KvRevisionError");
}
