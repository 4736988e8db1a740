import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root, from dist/bench/common (built) or bench/common (source). */
export const ROOT = here.includes("/dist/") ? join(here, "..", "..", "..") : join(here, "..", "..");
