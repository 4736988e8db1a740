import { sha256Hex, type TokenizedPrompts } from "../../../common/src/mod.js";

/** Everything besides the samples that decides a tile's values: model, prompts, maximum length. */
export function settingsKey(modelHash: string, prompts: TokenizedPrompts): string {
  return sha256Hex(
    "delift-settings/1\n",
    `model:${modelHash}\n`,
    `maxLength:${prompts.maxLength}\neos:${prompts.eosId}\n`,
    `baseline:${JSON.stringify(prompts.baseline)}\n`,
    `example:${JSON.stringify(prompts.example)}\n`,
  );
}
