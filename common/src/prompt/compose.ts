import type { PromptPiece, TokenizedTemplate } from "./tokenized-prompt.js";

/** Token ids of one sample's two fields. */
export type SampleTokens = { x: ArrayLike<number>; y: ArrayLike<number> };

/** The target part of a prompt, and where the scored response starts inside it. */
export type TargetPart = { ids: Int32Array; responseStart: number };

/** Example-dependent ids after the header: `header + examplePart` is the prefix of every target. */
export function composeExamplePart(template: TokenizedTemplate, example: SampleTokens | null): Int32Array {
  return concat(template.example, (field) => {
    if (!example) throw new Error(`template piece {${field}} needs an example`);
    return field === "example_x" ? example.x : example.y;
  });
}

export function composeTargetPart(template: TokenizedTemplate, target: SampleTokens): TargetPart {
  let responseStart = -1;
  let length = 0;
  const parts: ArrayLike<number>[] = [];
  for (const piece of template.target) {
    const ids = resolve(piece, (field) => (field === "x" ? target.x : field === "y" ? target.y : []));
    if (piece.kind === "field" && piece.field === "y") responseStart = length;
    parts.push(ids);
    length += ids.length;
  }
  return { ids: join(parts, length), responseStart };
}

function concat(pieces: PromptPiece[], field: (f: string) => ArrayLike<number>): Int32Array {
  const parts = pieces.map((p) => resolve(p, field));
  return join(parts, parts.reduce((n, p) => n + p.length, 0));
}

function resolve(piece: PromptPiece, field: (f: string) => ArrayLike<number>): ArrayLike<number> {
  return piece.kind === "ids" ? piece.ids : field(piece.field);
}

function join(parts: ArrayLike<number>[], length: number): Int32Array {
  const out = new Int32Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
