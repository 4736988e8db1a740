import { loadTokenizer, openBundle, type Device } from "../../../common/src/mod.js";
import { loadOnnxCausalLm } from "../../../worker/src/mod.js";
import { fail, ok, reason, type CheckResult } from "./report.js";

/** Opens a model bundle as a worker does: manifest, file hashes, tokenizer, and an onnxruntime session of the decoder. */
export async function bundleCheck(dir: string, device: Device): Promise<CheckResult> {
  try {
    const bundle = await openBundle(dir);
    const tokenizer = await loadTokenizer(bundle.tokenizerPath);
    const probe = tokenizer.encode("delift doctor").length;
    const model = await loadOnnxCausalLm(bundle.modelPath, { device, threads: 1, padId: bundle.manifest.padId ?? bundle.manifest.eosId });
    await model.dispose();
    return ok("model", `${bundle.manifest.name ?? dir}: manifest, ${Object.keys(bundle.fileHashes).length} file hashes, tokenizer (${probe} tokens for a probe) and the decoder on ${device} load; bundle hash ${bundle.hash.slice(0, 12)}`);
  } catch (err) {
    return fail("model", `${dir}: ${reason(err)}`);
  }
}
