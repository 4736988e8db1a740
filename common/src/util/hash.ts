import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export function sha256Hex(...parts: (string | ArrayBufferView)[]): string {
  const hash = createHash("sha256");
  for (const p of parts) {
    if (typeof p === "string") hash.update(p);
    else hash.update(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  }
  return hash.digest("hex");
}
