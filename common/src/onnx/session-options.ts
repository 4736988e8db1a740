import * as ort from "onnxruntime-node";
import { ModelError } from "../errors.js";

export type Device = "cpu" | "cuda";

/** onnxruntime session options for a device; CUDA is checked up front and explained when missing. */
export async function sessionOptionsFor(device: Device, threads?: number): Promise<ort.InferenceSession.SessionOptions> {
  const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: "all", logSeverityLevel: 3 };
  // Spinning thread pools burn the cores they wait on; on a shared node (other workers, other jobs)
  // that made a 2-thread session slower than a 1-thread one. Idle threads sleep instead.
  options.extra = { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } };
  if (threads) options.intraOpNumThreads = threads;
  if (device === "cuda") {
    const backends = ort.listSupportedBackends().map((b) => b.name);
    if (!backends.includes("cuda")) {
      throw new ModelError(
        `--device cuda: this onnxruntime-node install has no CUDA execution provider (available: ${backends.join(", ")}). ` +
          "On a GPU machine install onnxruntime-node without onnxruntime-node-install=skip (it then fetches the CUDA provider; " +
          "needs CUDA 12 and cuDNN 9), or run with --device cpu.",
      );
    }
    options.executionProviders = ["cuda", "cpu"];
  } else {
    options.executionProviders = ["cpu"];
  }
  return options;
}
