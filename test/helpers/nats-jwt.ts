import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createAccount, createOperator, createUser, type KeyPair } from "@nats-io/nkeys";

/**
 * Decentralised NATS auth for tests: an operator, one account with JetStream enabled and one user,
 * as signed JWTs (nats-server's operator mode with a memory resolver), and the user's .creds file.
 * Written out here (ed25519 nkeys, the JWT v2 claim layout) so the test needs no nsc tool.
 */
export type NatsOperatorSetup = { serverConfig: string; credsFile: string; strangerCredsFile: string };

const b64url = (data: string | Uint8Array) => Buffer.from(data).toString("base64url");

function jwt(issuer: KeyPair, subject: string, name: string, nats: object): string {
  const claims: Record<string, unknown> = { iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject, nats };
  claims.jti = createHash("sha256").update(JSON.stringify(claims)).digest("base64url").toUpperCase().replace(/[^A-Z2-7]/g, "A").slice(0, 52);
  const head = b64url(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }));
  const body = b64url(JSON.stringify(claims));
  const signature = issuer.sign(new TextEncoder().encode(`${head}.${body}`));
  return `${head}.${body}.${b64url(signature)}`;
}

const pub = (kp: KeyPair) => kp.getPublicKey();

function creds(userJwt: string, user: KeyPair): string {
  return (
    `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n` +
    `************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\n\n` +
    `-----BEGIN USER NKEY SEED-----\n${new TextDecoder().decode(user.getSeed())}\n------END USER NKEY SEED------\n`
  );
}

export function natsOperatorSetup(dir: string): NatsOperatorSetup {
  const operator = createOperator();
  const account = createAccount();
  const user = createUser();
  const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
  const operatorJwt = jwt(operator, pub(operator), "delift-test-operator", { type: "operator", version: 2 });
  const accountJwt = jwt(operator, pub(account), "delift", { limits: unlimited, default_permissions: { pub: {}, sub: {} }, type: "account", version: 2 });
  // JetStream needs a system account.
  const system = createAccount();
  const systemJwt = jwt(operator, pub(system), "SYS", { limits: { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 }, default_permissions: { pub: {}, sub: {} }, type: "account", version: 2 });
  const userJwt = jwt(account, pub(user), "delift-user", { pub: {}, sub: {}, subs: -1, data: -1, payload: -1, type: "user", version: 2 });
  // A user signed by an account the server does not know: well-formed, but not trusted.
  const otherAccount = createAccount();
  const stranger = createUser();
  const strangerJwt = jwt(otherAccount, pub(stranger), "stranger", { pub: {}, sub: {}, subs: -1, data: -1, payload: -1, type: "user", version: 2 });
  const credsFile = join(dir, "delift.creds");
  const strangerCredsFile = join(dir, "stranger.creds");
  writeFileSync(credsFile, creds(userJwt, user), { mode: 0o600 });
  writeFileSync(strangerCredsFile, creds(strangerJwt, stranger), { mode: 0o600 });
  return {
    serverConfig: `operator: "${operatorJwt}"\nsystem_account: ${pub(system)}\nresolver: MEMORY\nresolver_preload: {\n  ${pub(account)}: "${accountJwt}"\n  ${pub(system)}: "${systemJwt}"\n}\n`,
    credsFile,
    strangerCredsFile,
  };
}
