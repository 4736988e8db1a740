import * as ort from "onnxruntime-node";
import { fail, ok, reason, warn, type CheckResult } from "./report.js";
import { identityModel } from "./probe-graph.js";

const MIN_NODE_MAJOR = 20;

export function nodeCheck(version = process.versions.node): CheckResult {
  const major = Number(version.split(".")[0]);
  return major >= MIN_NODE_MAJOR ? ok("node", `v${version}`) : fail("node", `v${version}: delift needs Node.js ${MIN_NODE_MAJOR} or newer`);
}

/**
 * Runs a one-node graph on each provider: the only proof that a provider loads (onnxruntime-node
 * lists CUDA as supported even when its libraries were never installed). CUDA missing is a
 * failure only when this machine is meant to use it (--device cuda).
 */
export async function providerChecks(wantCuda: boolean): Promise<CheckResult[]> {
  const version = ort.env.versions?.node ?? "?";
  const model = identityModel();
  const results: CheckResult[] = [];
  // A provider that fails to load is reported on its line; onnxruntime's own log would print it
  // again on stderr with a native stack.
  ort.env.logLevel = "fatal";
  for (const provider of ["cpu", "cuda"] as const) {
    const name = `onnxruntime ${provider}`;
    try {
      const session = await ort.InferenceSession.create(model, { executionProviders: [provider], logSeverityLevel: 4 });
      const out = await session.run({ X: new ort.Tensor("float32", new Float32Array([1.5]), [1]) });
      await session.release();
      const y = (out.Y?.data as Float32Array | undefined)?.[0];
      results.push(y === 1.5 ? ok(name, `onnxruntime-node ${version}: the ${provider} provider runs a graph`) : fail(name, `the ${provider} provider ran a graph and returned ${y} instead of 1.5`));
    } catch (err) {
      if (provider === "cpu") {
        results.push(fail(name, `onnxruntime-node ${version} cannot run a graph on the CPU: ${reason(err)}`));
        continue;
      }
      const detail =
        `not usable here (${reason(err).split("\n")[0]}); for GPU workers install it with ` +
        "`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` (needs CUDA 12, cuDNN 9 and an NVIDIA driver)";
      results.push(wantCuda ? fail(name, detail) : warn(name, `${detail}; CPU workers do not need it`));
    }
  }
  return results;
}
