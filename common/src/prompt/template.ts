import { ConfigError } from "../errors.js";

export type PromptField = "example_x" | "example_y" | "x" | "y" | "eos";

export type TemplateSegment = { kind: "literal"; text: string } | { kind: "field"; field: PromptField };

/** The two prompts of DELIFT: P0 scores a target alone, P1 with one in-context example. */
export type PromptTemplates = { baseline: string; example: string };

/** The paper's defaults (DESIGN.md §1). No BOS; EOS between prompt and response and after it. */
export const DEFAULT_TEMPLATES: PromptTemplates = {
  baseline: "Instruction: Please generate a response to the following query.\n\n\nQuery: {x}\n{eos}{y}{eos}",
  example:
    "Instruction:\nUse the following example as a guide to answer the query in the same format and style, " +
    "providing a clear and concise response.\n\n\nExample:\n{example_x}\n{example_y}\n\n\nQuery:\n{x}\n{eos}{y}{eos}",
};

const FIELDS: ReadonlySet<string> = new Set(["example_x", "example_y", "x", "y", "eos"]);
const EXAMPLE_FIELDS: ReadonlySet<PromptField> = new Set(["example_x", "example_y"]);

/** Splits a template into literal text and fields. `{{` and `}}` stand for literal braces. */
export function parseTemplate(template: string, name: string): TemplateSegment[] {
  const segments: TemplateSegment[] = [];
  let literal = "";
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c === "{" && template[i + 1] === "{") {
      literal += "{";
      i++;
    } else if (c === "}" && template[i + 1] === "}") {
      literal += "}";
      i++;
    } else if (c === "{") {
      const end = template.indexOf("}", i);
      const field = end < 0 ? "" : template.slice(i + 1, end);
      if (!FIELDS.has(field)) {
        throw new ConfigError(
          `prompt template "${name}": unknown placeholder at offset ${i} ("${template.slice(i, end < 0 ? i + 12 : end + 1)}"); ` +
            `expected one of {x} {y} {example_x} {example_y} {eos}, or {{ and }} for literal braces`,
        );
      }
      if (literal) segments.push({ kind: "literal", text: literal });
      literal = "";
      segments.push({ kind: "field", field: field as PromptField });
      i = end;
    } else if (c === "}") {
      throw new ConfigError(`prompt template "${name}": lone "}" at offset ${i}; write }} for a literal brace`);
    } else {
      literal += c;
    }
  }
  if (literal) segments.push({ kind: "literal", text: literal });
  return segments;
}

/**
 * Checks what the engine relies on: {x} then {y}, each once; in the example prompt every
 * example field comes before the target's fields, so the example prefix is shared by all
 * targets; after {y} only literals and {eos} (the scored response tail).
 */
export function validateTemplate(segments: TemplateSegment[], name: string, withExample: boolean): void {
  const fields = segments.filter((s): s is { kind: "field"; field: PromptField } => s.kind === "field").map((s) => s.field);
  const count = (f: PromptField) => fields.filter((x) => x === f).length;
  const fail = (why: string) => {
    throw new ConfigError(`prompt template "${name}": ${why}`);
  };
  if (count("x") !== 1) fail("must contain {x} exactly once");
  if (count("y") !== 1) fail("must contain {y} exactly once");
  if (fields.indexOf("x") > fields.indexOf("y")) fail("{x} must come before {y}");
  if (withExample) {
    if (count("example_x") !== 1 || count("example_y") !== 1) fail("must contain {example_x} and {example_y} exactly once");
    const firstTarget = Math.min(fields.indexOf("x"), fields.indexOf("y"));
    if (fields.some((f, k) => EXAMPLE_FIELDS.has(f) && k > firstTarget)) {
      fail("the example fields must come before {x}: the example prefix is computed once and shared by all targets");
    }
  } else if (fields.some((f) => EXAMPLE_FIELDS.has(f))) {
    fail("the baseline prompt cannot contain example fields");
  }
  const afterY = fields.slice(fields.indexOf("y") + 1);
  if (afterY.some((f) => f !== "eos")) fail("only literal text and {eos} may follow {y}");
}
