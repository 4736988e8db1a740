import * as grpc from "@grpc/grpc-js";
import { channelCredentials, connectCoordinator, isGrpcStatus, loadServices } from "../../../common/src/mod.js";
import { fail, ok, reason, type CheckResult } from "./report.js";

export type CoordinatorTarget = { address: string; token?: string; caPem?: string | Buffer; source: string };

/**
 * The health service (unauthenticated, proto/health.proto) says whether the coordinator serves;
 * an authenticated call says whether the token is accepted.
 */
export async function coordinatorChecks(target: CoordinatorTarget): Promise<CheckResult[]> {
  const { health } = loadServices();
  const probe = new health(target.address, channelCredentials(target.caPem)) as unknown as grpc.Client & { check: (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: { status: string }) => void) => void };
  const where = `${target.address} (${target.source}${target.caPem ? ", TLS" : ""})`;
  try {
    const res = await new Promise<{ status: string }>((resolve, reject) => probe.check({ service: "" }, { deadline: Date.now() + 5000 }, (err, r) => (err ? reject(err) : resolve(r))));
    if (res.status !== "SERVING") return [fail("coordinator", `${where} answers but is ${res.status}`)];
  } catch (err) {
    return [fail("coordinator", `${where} is not reachable over gRPC: ${reason(err)}${isGrpcStatus(err, grpc.status.UNAVAILABLE) && !target.caPem ? " (if it serves TLS, give --tls-ca)" : ""}`)];
  } finally {
    probe.close();
  }
  const results = [ok("coordinator", `${where} serves (health SERVING)`)];
  const client = connectCoordinator({ address: target.address, token: target.token, caPem: target.caPem });
  try {
    const { workers } = await client.unary<{ workers: unknown[] }>("listWorkers", {}, 5000);
    results.push(ok("coordinator token", `accepted; ${workers.length} worker${workers.length === 1 ? "" : "s"} alive`));
  } catch (err) {
    const refused = isGrpcStatus(err, grpc.status.UNAUTHENTICATED) || isGrpcStatus(err, grpc.status.PERMISSION_DENIED);
    results.push(fail("coordinator token", refused ? `refused by the coordinator${target.token ? "" : " (no token given: --token or DELIFT_TOKEN)"}` : reason(err)));
  } finally {
    client.close();
  }
  return results;
}
