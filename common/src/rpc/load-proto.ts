import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

/** proto/ at the repository root, from common/src/rpc (source) or dist/common/src/rpc (built). */
function protoDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const up = here.includes("/dist/") ? ["..", "..", "..", ".."] : ["..", "..", ".."];
  return join(here, ...up, "proto");
}

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

let cached: { coordinator: grpc.ServiceClientConstructor; health: grpc.ServiceClientConstructor } | null = null;

/** The delift and health services, loaded from the .proto files at run time (never generated code). */
export function loadServices(): { coordinator: grpc.ServiceClientConstructor; health: grpc.ServiceClientConstructor } {
  if (cached) return cached;
  const dir = protoDir();
  const definition = protoLoader.loadSync([join(dir, "delift.proto"), join(dir, "health.proto")], { ...LOADER_OPTIONS, includeDirs: [dir] });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    delift: { v1: { Coordinator: grpc.ServiceClientConstructor } };
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  cached = { coordinator: root.delift.v1.Coordinator, health: root.grpc.health.v1.Health };
  return cached;
}
