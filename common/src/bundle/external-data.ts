import { readFile, stat } from "node:fs/promises";
import { posix } from "node:path";
import { join } from "node:path";
import { ModelError } from "../errors.js";
import { externalTensorRefs } from "../onnx/external-tensors.js";

/**
 * The external data files an ONNX file of a bundle loads, as bundle-relative paths, read from
 * each tensor's `external_data` location (one shared file or one per tensor; never guessed).
 * Each location is checked: inside the bundle, present, and long enough for its tensor.
 */
export async function externalDataFiles(root: string, onnxFile: string): Promise<string[]> {
  const path = join(root, onnxFile);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new ModelError(`model bundle ${root}: cannot read ${onnxFile}: ${(err as Error).message}`, { cause: err });
  }
  let refs;
  try {
    refs = externalTensorRefs(bytes);
  } catch (err) {
    throw new ModelError(`model bundle ${root}: ${onnxFile} is not a readable ONNX model: ${(err as Error).message}`, { cause: err });
  }
  const base = posix.dirname(onnxFile);
  const sizes = new Map<string, number>();
  for (const ref of refs) {
    const loc = ref.location.replaceAll("\\", "/");
    if (!loc || loc.startsWith("/") || posix.normalize(loc).startsWith("..") || /^[a-zA-Z]:/.test(loc)) {
      throw new ModelError(`model bundle ${root}: ${onnxFile}: tensor "${ref.tensor}" has external data location ${JSON.stringify(ref.location)}, expected a file name inside the bundle`);
    }
    const file = posix.normalize(posix.join(base, loc));
    let size = sizes.get(file);
    if (size === undefined) {
      size = await stat(join(root, file)).then((s) => (s.isFile() ? s.size : -1), () => -1);
      if (size < 0) throw new ModelError(`model bundle ${root}: ${onnxFile} keeps tensor "${ref.tensor}" in external data file "${file}", which is missing`);
      sizes.set(file, size);
    }
    const end = ref.offset + (ref.length ?? 0);
    if (!Number.isFinite(end) || ref.offset < 0 || end > size) {
      throw new ModelError(
        `model bundle ${root}: ${onnxFile}: tensor "${ref.tensor}" needs bytes ${ref.offset}..${end} of "${file}", which has ${size} (truncated or wrong file)`,
      );
    }
  }
  return [...sizes.keys()];
}
