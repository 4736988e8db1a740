import type { TextTokenizer } from "../tokenizer/text-tokenizer.js";
import { parseTemplate, validateTemplate, type PromptTemplates, type TemplateSegment } from "./template.js";

export type SampleField = "example_x" | "example_y" | "x" | "y";

/** A template piece after tokenization: fixed ids, or a sample field filled in per pair. */
export type PromptPiece = { kind: "ids"; ids: number[] } | { kind: "field"; field: SampleField };

/**
 * A template split where the engine needs it: `header` (fixed ids before any field, its KV
 * cache is shared by every prompt), `example` (pieces up to the target's first field: with the
 * header, the prefix shared by every target of one example) and `target` (the rest; {y} and
 * what follows it is the scored response).
 */
export type TokenizedTemplate = { header: number[]; example: PromptPiece[]; target: PromptPiece[] };

export type TokenizedPrompts = {
  baseline: TokenizedTemplate;
  example: TokenizedTemplate;
  eosId: number;
  maxLength: number;
};

/**
 * Canonical tokenization (DESIGN.md §1): every literal and every field is tokenized on its own
 * and the id lists are concatenated, so the example prefix is identical for every target.
 */
export function tokenizePrompts(
  templates: PromptTemplates,
  tokenizer: TextTokenizer,
  eosId: number,
  maxLength: number,
): TokenizedPrompts {
  const baseline = parseTemplate(templates.baseline, "baseline");
  validateTemplate(baseline, "baseline", false);
  const example = parseTemplate(templates.example, "example");
  validateTemplate(example, "example", true);
  return {
    baseline: splitTemplate(baseline, tokenizer, eosId),
    example: splitTemplate(example, tokenizer, eosId),
    eosId,
    maxLength,
  };
}

function splitTemplate(segments: TemplateSegment[], tokenizer: TextTokenizer, eosId: number): TokenizedTemplate {
  const pieces: PromptPiece[] = [];
  for (const s of segments) {
    if (s.kind === "literal") pieces.push({ kind: "ids", ids: tokenizer.encode(s.text) });
    else if (s.field === "eos") pieces.push({ kind: "ids", ids: [eosId] });
    else pieces.push({ kind: "field", field: s.field });
  }
  const merged = mergeIds(pieces);
  const firstField = merged.findIndex((p) => p.kind === "field");
  const firstTarget = merged.findIndex((p) => p.kind === "field" && (p.field === "x" || p.field === "y"));
  const header = merged.slice(0, firstField).flatMap((p) => (p.kind === "ids" ? p.ids : []));
  return { header, example: merged.slice(firstField, firstTarget), target: merged.slice(firstTarget) };
}

function mergeIds(pieces: PromptPiece[]): PromptPiece[] {
  const out: PromptPiece[] = [];
  for (const p of pieces) {
    const last = out[out.length - 1];
    if (p.kind === "ids" && last?.kind === "ids") last.ids = last.ids.concat(p.ids);
    else out.push(p.kind === "ids" ? { kind: "ids", ids: [...p.ids] } : p);
  }
  return out.filter((p) => p.kind === "field" || p.ids.length > 0);
}
