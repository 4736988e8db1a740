/**
 * The seam for authenticated selection messages. Every logical message between coordinator and a
 * shard host is signed over its direction, id and payload; the receiver drops one whose signature
 * does not verify. The runtime's per-job secret (issue 7: tile messages get an HMAC with a secret
 * workers obtain over gRPC, never through NATS) plugs in here as an HmacAuthenticator, so NATS
 * credentials alone cannot forge a shard's answer. Until a secret is given, messages go unsigned
 * and are checked for structure and consistency only.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { ConfigError } from "../../errors.js";

export type MessageDirection = "request" | "reply";

export interface MessageAuthenticator {
  /** The signature of one message, or null when messages are not signed. */
  sign(direction: MessageDirection, msgId: string, payload: Uint8Array): string | null;
  /** Whether a received message's signature (null when it carried none) is acceptable. */
  verify(direction: MessageDirection, msgId: string, payload: Uint8Array, signature: string | null): boolean;
}

/** No signatures: structure and consistency checks only. */
export const UNSIGNED: MessageAuthenticator = {
  sign: () => null,
  verify: () => true,
};

/** HMAC-SHA256 with a shared secret; a message without a valid signature is refused. */
export class HmacAuthenticator implements MessageAuthenticator {
  private readonly secret: Buffer;

  constructor(secret: Uint8Array) {
    if (secret.byteLength < 16) throw new ConfigError("a message secret needs at least 16 bytes");
    this.secret = Buffer.from(secret);
  }

  sign(direction: MessageDirection, msgId: string, payload: Uint8Array): string {
    return createHmac("sha256", this.secret).update(`delift-select/1:${direction}:${msgId}:`).update(payload).digest("hex");
  }

  verify(direction: MessageDirection, msgId: string, payload: Uint8Array, signature: string | null): boolean {
    if (signature === null || !/^[0-9a-f]{64}$/.test(signature)) return false;
    return timingSafeEqual(Buffer.from(this.sign(direction, msgId, payload), "hex"), Buffer.from(signature, "hex"));
  }
}
