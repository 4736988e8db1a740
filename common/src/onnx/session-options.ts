import * as ort from "onnxruntime-node";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { WorkerHealthError } from "../errors.js";

export type Device = "cpu" | "cuda";

/** The provider libraries that onnxruntime-node's install script fetches for CUDA (they are not in the npm package). */
const CUDA_PROVIDER_LIBRARIES = ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"];

/** Where onnxruntime-node keeps its native libraries on this platform. */
export function onnxruntimeBinaryDir(): string {
  const entry = createRequire(import.meta.url).resolve("onnxruntime-node");
  return join(dirname(entry), "..", "bin", "napi-v6", process.platform, process.arch);
}

/**
 * Whether this onnxruntime-node install can run the CUDA execution provider. onnxruntime-node
 * lists "cuda" among its backends even when the provider libraries were never downloaded, so the
 * files themselves are checked. `problem` says what is missing and how to install it.
 */
export function cudaProviderStatus(): { available: true } | { available: false; problem: string } {
  const backends = ort.listSupportedBackends().map((b) => b.name);
  if (!backends.includes("cuda")) {
    return { available: false, problem: `this onnxruntime-node build has no CUDA execution provider (backends: ${backends.join(", ")}; CUDA needs Linux x64)` };
  }
  if (process.platform === "linux") {
    const dir = onnxruntimeBinaryDir();
    const missing = CUDA_PROVIDER_LIBRARIES.filter((f) => !existsSync(join(dir, f)));
    if (missing.length > 0) {
      return {
        available: false,
        problem:
          `onnxruntime-node's CUDA provider is not installed: ${missing.join(" and ")} missing in ${dir} ` +
          "(the npm package does not ship it, and delift's npm ci skips the script that downloads it). On a GPU node with CUDA 12 and cuDNN 9, run " +
          "`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` once (README: \"Bring your model\")",
      };
    }
  }
  return { available: true };
}

/** Throws a WorkerHealthError (this machine's fault, not the job's) when `device` cannot run here. */
export function checkDevice(device: Device): void {
  if (device !== "cuda") return;
  const status = cudaProviderStatus();
  if (!status.available) throw new WorkerHealthError(`--device cuda: ${status.problem}; or run with --device cpu`);
}

/** onnxruntime session options for a device; CUDA is checked up front and explained when missing. */
export async function sessionOptionsFor(device: Device, threads?: number): Promise<ort.InferenceSession.SessionOptions> {
  const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: "all", logSeverityLevel: 3 };
  // Spinning thread pools burn the cores they wait on; on a shared node (other workers, other jobs)
  // that made a 2-thread session slower than a 1-thread one. Idle threads sleep instead.
  options.extra = { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } };
  if (threads) options.intraOpNumThreads = threads;
  checkDevice(device);
  options.executionProviders = device === "cuda" ? ["cuda", "cpu"] : ["cpu"];
  return options;
}
