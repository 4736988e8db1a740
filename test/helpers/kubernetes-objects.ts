import { join } from "node:path";
import ts from "typescript";
import { ROOT } from "./paths.js";

/** A Kubernetes object read from a manifest, with where it came from (for messages). */
export type ManifestObject = { file: string; index: number; object: Record<string, unknown> };

/** The kinds delift's manifests use: the kubernetes-models module and interface that describe each. */
export const KINDS: Record<string, { module: string; type: string }> = {
  "v1/Namespace": { module: "kubernetes-models/v1/Namespace", type: "INamespace" },
  "v1/Service": { module: "kubernetes-models/v1/Service", type: "IService" },
  "v1/Secret": { module: "kubernetes-models/v1/Secret", type: "ISecret" },
  "v1/ConfigMap": { module: "kubernetes-models/v1/ConfigMap", type: "IConfigMap" },
  "v1/PersistentVolumeClaim": { module: "kubernetes-models/v1/PersistentVolumeClaim", type: "IPersistentVolumeClaim" },
  "apps/v1/StatefulSet": { module: "kubernetes-models/apps/v1/StatefulSet", type: "IStatefulSet" },
  "apps/v1/Deployment": { module: "kubernetes-models/apps/v1/Deployment", type: "IDeployment" },
  "policy/v1/PodDisruptionBudget": { module: "kubernetes-models/policy/v1/PodDisruptionBudget", type: "IPodDisruptionBudget" },
  "keda.sh/v1alpha1/ScaledObject": { module: "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", type: "IScaledObject" },
};

export function kindOf(o: Record<string, unknown>): string {
  return `${String(o.apiVersion)}/${String(o.kind)}`;
}

/** kubernetes-models' runtime validation (its JSON schemas): types, required fields, formats, enums. */
export async function validateWithModels(objects: ManifestObject[]): Promise<string[]> {
  const errors: string[] = [];
  for (const { file, index, object } of objects) {
    const kind = KINDS[kindOf(object)];
    if (!kind) {
      errors.push(`${file}#${index}: no schema for ${kindOf(object)}`);
      continue;
    }
    const mod = (await import(kind.module)) as Record<string, new (data: unknown) => { validate(): void }>;
    const Model = mod[kind.type.slice(1)];
    try {
      new Model(object).validate();
    } catch (err) {
      errors.push(`${file}#${index} (${kindOf(object)}): ${(err as Error).message}`);
    }
  }
  return errors;
}

/**
 * The schemas above ignore fields they do not know, so a misspelt field (`imagee`, `volumeMount`)
 * would pass them and be dropped by the API server. The same models' TypeScript interfaces do
 * know every field: each object becomes a literal typed by its interface and the compiler's
 * excess-property check reports any field the API does not have, at any depth.
 */
export function unknownFields(objects: ManifestObject[]): string[] {
  const file = join(ROOT, "__delift_manifest_check__.ts");
  const imports = new Set<string>();
  const checked = objects.filter(({ object }) => KINDS[kindOf(object)]);
  for (const { object } of checked) {
    const kind = KINDS[kindOf(object)];
    imports.add(`import type { ${kind.type} } from "${kind.module}";`);
  }
  const lines = checked.map(({ object }, k) => `export const object${k}: ${KINDS[kindOf(object)].type} = ${JSON.stringify(object)};`);
  const text = [...imports, ...lines].join("\n");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, language, ...rest) => (name === file ? ts.createSourceFile(name, text, language) : getSourceFile(name, language, ...rest));
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const o = checked[line - imports.size];
    const where = o ? `${o.file}#${o.index} (${kindOf(o.object)})` : "manifest check";
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, " ").slice(0, 400)}`;
  });
}
