import { readFileSync } from "node:fs";
import { ConfigError, connectCoordinator, type CoordinatorClient } from "../../../common/src/mod.js";
import type { OptionSpec } from "../args.js";

export const CLIENT_OPTIONS: OptionSpec = {
  coordinator: { type: "string" },
  token: { type: "string" },
  "tls-ca": { type: "string" },
};

export const CLIENT_HELP = `Coordinator access (flags, or environment variables):
  --coordinator HOST:PORT   the coordinator's gRPC address (DELIFT_COORDINATOR)
  --token T                 bearer token (DELIFT_TOKEN)
  --tls-ca FILE             CA certificate when the coordinator serves TLS (DELIFT_TLS_CA)`;

export function clientFrom(values: Record<string, string | boolean | undefined>): CoordinatorClient {
  const pick = (flag: string, env: string) => (typeof values[flag] === "string" ? (values[flag] as string) : process.env[env] || undefined);
  const address = pick("coordinator", "DELIFT_COORDINATOR");
  if (!address) throw new ConfigError("--coordinator HOST:PORT is required (or DELIFT_COORDINATOR)");
  const caFile = pick("tls-ca", "DELIFT_TLS_CA");
  let caPem: Buffer | undefined;
  if (caFile) {
    try {
      caPem = readFileSync(caFile);
    } catch (err) {
      throw new ConfigError(`cannot read --tls-ca ${caFile}: ${(err as Error).message}`);
    }
  }
  return connectCoordinator({ address, token: pick("token", "DELIFT_TOKEN"), caPem });
}
