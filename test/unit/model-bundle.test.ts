import { test } from "uvu";
import * as assert from "uvu/assert";
import { copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bundleFiles, externalDataFiles, findDecoderFile, isModelError, ModelError, openBundle, readExportSettings } from "../../common/src/mod.js";
import { buildMessage, DataLocation, DataType, Graph, Model, StringStringEntry, Tensor } from "../../common/src/internal_mod.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const MODELS = join(FIXTURES, "models");

async function modelError(p: Promise<unknown>): Promise<ModelError> {
  const err = await p.then(() => null, (e) => e);
  assert.ok(err, "expected an error");
  assert.ok(isModelError(err), `expected a ModelError, got ${err}`);
  return err as ModelError;
}

function writeJson(dir: string, name: string, value: unknown): void {
  writeFileSync(join(dir, name), JSON.stringify(value));
}

test("context length and eos from any common family's config; explicit values win", async () => {
  const dir = tempDir();
  try {
    const cases: [object, object | null, number, number][] = [
      [{ max_position_embeddings: 2048, eos_token_id: 7 }, null, 2048, 7], // Llama, Qwen2, Phi-3
      [{ n_positions: 1024, n_ctx: 1024, eos_token_id: 50256 }, null, 1024, 50256], // GPT-2
      [{ n_ctx: 512, eos_token_id: [3, 4] }, null, 512, 3], // older GPT-style, eos list: the first
      [{ seq_length: 8192 }, { eos_token_id: [2, 5] }, 8192, 2], // ChatGLM-style; eos from generation_config
      [{ text_config: { max_position_embeddings: 4096, eos_token_id: 9 } }, null, 4096, 9], // multimodal wrapper
    ];
    for (const [config, generation, maxLength, eos] of cases) {
      rmSync(join(dir.path, "generation_config.json"), { force: true });
      writeJson(dir.path, "config.json", config);
      if (generation) writeJson(dir.path, "generation_config.json", generation);
      const s = await readExportSettings(dir.path, "tokenizer.json");
      assert.is(s.maxLength, maxLength, JSON.stringify(config));
      assert.is(s.eosId, eos, JSON.stringify(config));
      assert.is(s.padId, eos, "pad defaults to eos");
    }
    writeJson(dir.path, "config.json", { n_positions: 1024, eos_token_id: 3, pad_token_id: 1, vocab_size: 10 });
    const s = await readExportSettings(dir.path, "tokenizer.json", { eosId: 4, maxLength: 100 });
    assert.equal([s.eosId, s.maxLength, s.padId, s.vocabSize], [4, 100, 1, 10]);
    assert.is(s.sources.eosId, "--eos-id");
  } finally {
    dir.cleanup();
  }
});

test("eos from tokenizer_config.json when no config names it; bad or missing values are ModelErrors naming the file and field", async () => {
  const dir = tempDir();
  try {
    rmSync(join(dir.path, "x"), { force: true });
    writeJson(dir.path, "config.json", { max_position_embeddings: 256 });
    writeJson(dir.path, "tokenizer_config.json", { eos_token: { content: "</s>" } });
    writeJson(dir.path, "tokenizer.json", { added_tokens: [{ id: 2, content: "</s>" }], model: { vocab: {} } });
    assert.is((await readExportSettings(dir.path, "tokenizer.json")).eosId, 2);

    writeJson(dir.path, "tokenizer_config.json", {});
    assert.match((await modelError(readExportSettings(dir.path, "tokenizer.json"))).message, /no eos token id.*--eos-id/);
    writeJson(dir.path, "config.json", { eos_token_id: 1 });
    assert.match((await modelError(readExportSettings(dir.path, "tokenizer.json"))).message, /config\.json: no context length \(expected one of max_position_embeddings, n_positions, n_ctx, seq_length/);
    writeJson(dir.path, "config.json", { eos_token_id: 1, n_positions: "long" });
    assert.match((await modelError(readExportSettings(dir.path, "tokenizer.json"))).message, /field "n_positions": expected an integer/);
    writeJson(dir.path, "config.json", { eos_token_id: 99, n_positions: 64, vocab_size: 50 });
    assert.match((await modelError(readExportSettings(dir.path, "tokenizer.json"))).message, /eos token id 99 .* not below the vocabulary size 50/);
    writeFileSync(join(dir.path, "config.json"), "{ not json");
    assert.match((await modelError(readExportSettings(dir.path, "tokenizer.json"))).message, /config\.json: not valid JSON/);
  } finally {
    dir.cleanup();
  }
});

test("a plain optimum export opens as it is: its decoder, tokenizer and configs are the bundle's files and identity", async () => {
  const bundle = await openBundle(join(MODELS, "qwen2"));
  assert.is(bundle.source, "export");
  assert.is(bundle.manifest.files.model, "model.onnx");
  assert.equal(bundle.files, ["config.json", "generation_config.json", "model.onnx", "tokenizer.json"]);
  assert.equal(bundleFiles(bundle), bundle.files, "no manifest.json to publish");
  assert.is(bundle.manifest.eosId, 509, "config.json's eos, not generation_config's list");
  assert.is(bundle.manifest.maxLength, 1024);
  assert.is(bundle.manifest.vocabSize, 512);
  const merged = await openBundle(join(MODELS, "qwen2-merged"));
  assert.is(merged.manifest.files.model, "decoder_model_merged.onnx");
  assert.is.not(merged.hash, bundle.hash);
  const tiny = await openBundle(TINY_MODEL);
  assert.is(tiny.source, "manifest");
  assert.equal(tiny.files, ["encoder.onnx", "model.onnx", "tokenizer.json"]);
  assert.ok(bundleFiles(tiny).includes("manifest.json"));
  // The identity of a manifest bundle without external data is what it was before external data counted.
  assert.is(tiny.hash, (await openBundle(TINY_MODEL)).hash);
});

test("decoder files: model.onnx first, then merged, then decoder-with-past; a decoder without past is refused with the export flag to use", async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir.path, "decoder_model.onnx"), "x");
    assert.match((await modelError(findDecoderFile(dir.path))).message, /no decoder with KV cache.*text-generation-with-past/);
    writeFileSync(join(dir.path, "decoder_with_past_model.onnx"), "x");
    assert.is(await findDecoderFile(dir.path), "decoder_with_past_model.onnx");
    writeFileSync(join(dir.path, "decoder_model_merged.onnx"), "x");
    assert.is(await findDecoderFile(dir.path), "decoder_model_merged.onnx");
    mkdirSync(join(dir.path, "onnx"));
    writeFileSync(join(dir.path, "onnx", "model.onnx"), "x");
    assert.is(await findDecoderFile(dir.path), "decoder_model_merged.onnx", "the top level wins over onnx/");
    writeFileSync(join(dir.path, "model.onnx"), "x");
    assert.is(await findDecoderFile(dir.path), "model.onnx");
    const empty = tempDir();
    assert.match((await modelError(findDecoderFile(empty.path))).message, /no ONNX decoder found/);
    empty.cleanup();
  } finally {
    dir.cleanup();
  }
});

test("bundle problems are ModelErrors: no tokenizer, a file the manifest names is missing or was replaced, a model that is not ONNX", async () => {
  const dir = tempDir();
  try {
    cpSync(join(MODELS, "qwen2"), join(dir.path, "export"), { recursive: true });
    rmSync(join(dir.path, "export", "tokenizer.json"));
    assert.match((await modelError(openBundle(join(dir.path, "export")))).message, /no tokenizer\.json/);

    const tiny = join(dir.path, "tiny");
    mkdirSync(tiny);
    for (const f of ["manifest.json", "model.onnx", "tokenizer.json"]) copyFileSync(join(TINY_MODEL, f), join(tiny, f));
    assert.match((await modelError(openBundle(tiny))).message, /file "encoder\.onnx" named in manifest\.json is missing/);
    copyFileSync(join(TINY_MODEL, "tokenizer.json"), join(tiny, "encoder.onnx"));
    assert.match((await modelError(openBundle(tiny))).message, /encoder\.onnx has sha256 .* the manifest says/);

    const garbage = join(dir.path, "garbage");
    cpSync(join(MODELS, "qwen2"), garbage, { recursive: true });
    writeFileSync(join(garbage, "model.onnx"), Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]));
    assert.match((await modelError(openBundle(garbage))).message, /model\.onnx is not a readable ONNX model/);
  } finally {
    dir.cleanup();
  }
});

/** A model whose only initializer keeps its data in an external file at `location`. */
function externalModel(location: string, offset: number, length: number): Uint8Array {
  const entry = (k: string, v: string) => buildMessage().string(StringStringEntry.key, k).string(StringStringEntry.value, v).finish();
  const tensor = buildMessage()
    .int(Tensor.dims, length / 4)
    .int(Tensor.dataType, DataType.FLOAT)
    .string(Tensor.name, "w")
    .message(Tensor.externalData, entry("location", location))
    .message(Tensor.externalData, entry("offset", String(offset)))
    .message(Tensor.externalData, entry("length", String(length)))
    .int(Tensor.dataLocation, DataLocation.EXTERNAL)
    .finish();
  const graph = buildMessage().message(Graph.initializer, tensor).finish();
  return buildMessage().int(Model.irVersion, 8).message(Model.graph, graph).finish();
}

test("external data files are read from each tensor's location and checked: inside the bundle, present, long enough", async () => {
  const dir = tempDir();
  try {
    mkdirSync(join(dir.path, "onnx"));
    writeFileSync(join(dir.path, "onnx", "weights.bin"), Buffer.alloc(64));
    writeFileSync(join(dir.path, "onnx", "m.onnx"), externalModel("weights.bin", 16, 32));
    assert.equal(await externalDataFiles(dir.path, "onnx/m.onnx"), ["onnx/weights.bin"], "relative to the model's directory");
    writeFileSync(join(dir.path, "onnx", "m.onnx"), externalModel("weights.bin", 48, 32));
    assert.match((await modelError(externalDataFiles(dir.path, "onnx/m.onnx"))).message, /needs bytes 48\.\.80 of "onnx\/weights\.bin", which has 64/);
    writeFileSync(join(dir.path, "onnx", "m.onnx"), externalModel("other.bin", 0, 4));
    assert.match((await modelError(externalDataFiles(dir.path, "onnx/m.onnx"))).message, /tensor "w" in external data file "onnx\/other\.bin", which is missing/);
    for (const bad of ["../../etc/passwd", "/etc/passwd", ""]) {
      writeFileSync(join(dir.path, "onnx", "m.onnx"), externalModel(bad, 0, 4));
      assert.match((await modelError(externalDataFiles(dir.path, "onnx/m.onnx"))).message, /expected a file name inside the bundle/);
    }
  } finally {
    dir.cleanup();
  }
});

test("external data (one file, or one per tensor) is part of the bundle and of its hash; a missing or truncated data file is a ModelError", async () => {
  const one = await openBundle(join(MODELS, "llama"));
  assert.ok(one.files.includes("model.onnx_data"));
  const perTensor = await openBundle(join(MODELS, "llama-tensors"));
  const data = perTensor.files.filter((f) => !/\.(onnx|json)$/.test(f));
  assert.ok(data.length > 10, `one file per tensor: ${data.join(", ")}`);
  const dir = tempDir();
  try {
    const copy = join(dir.path, "llama");
    cpSync(join(MODELS, "llama"), copy, { recursive: true });
    assert.is((await openBundle(copy)).hash, one.hash, "same files, same hash, wherever they lie");
    const bytes = readFileSync(join(copy, "model.onnx_data"));
    bytes[bytes.length - 1] ^= 0x01;
    writeFileSync(join(copy, "model.onnx_data"), bytes);
    assert.is.not((await openBundle(copy)).hash, one.hash, "a changed weight in the external data changes the identity");
    truncateSync(join(copy, "model.onnx_data"), 100);
    assert.match((await modelError(openBundle(copy))).message, /model\.onnx_data.*truncated or wrong file/);
    rmSync(join(copy, "model.onnx_data"));
    assert.match((await modelError(openBundle(copy))).message, /external data file "model\.onnx_data", which is missing/);
  } finally {
    dir.cleanup();
  }
});

test.run();
