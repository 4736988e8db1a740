import type { PromptPiece, TokenizedTemplate } from "./tokenized-prompt.js";

/** Lengths of the pieces of a template for a sample, without building the ids. */
export function fixedLength(pieces: PromptPiece[]): number {
  let n = 0;
  for (const p of pieces) if (p.kind === "ids") n += p.ids.length;
  return n;
}

export type FieldLengths = { x: number; y: number };

/** header + example part length for example j. */
export function prefixLength(template: TokenizedTemplate, example: FieldLengths | null): number {
  let n = template.header.length + fixedLength(template.example);
  for (const p of template.example) {
    if (p.kind === "field" && example) n += p.field === "example_x" ? example.x : p.field === "example_y" ? example.y : 0;
  }
  return n;
}

export function targetLength(template: TokenizedTemplate, target: FieldLengths): number {
  let n = fixedLength(template.target);
  for (const p of template.target) if (p.kind === "field") n += p.field === "x" ? target.x : p.field === "y" ? target.y : 0;
  return n;
}

/** Tokens scored for a target: y plus the fixed tail after it (the closing EOS). */
export function responseLength(template: TokenizedTemplate, target: FieldLengths): number {
  const at = template.target.findIndex((p) => p.kind === "field" && p.field === "y");
  return target.y + fixedLength(template.target.slice(at + 1));
}
