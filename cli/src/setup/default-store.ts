import { homedir } from "node:os";
import { join } from "node:path";

/** Where stored tiles live by default: content-keyed, so any run may share them. */
export function defaultStoreDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "delift", "tiles");
}
