// Validates custom resources for `make k8s-check` (scripts/k8s_check.py): reads a JSON array of
// objects on stdin, prints a JSON array with one {kind, name, errors} per object.
//
// Two checks per object:
//  - the model class of @kubernetes-models/<crd> (`new Cluster(obj).validate()`): types, required
//    fields, enums, formats, from the CRD's OpenAPI schema;
//  - unknown fields, which those validators accept: every key must be a property of the
//    TypeScript interface the package declares for that place (the .d.ts files hold the CRD's
//    schema as interfaces), recursively through nested interfaces, arrays and maps.
// An apiVersion/kind without a model here is an error: nothing passes unchecked.
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as cnpg from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.join(here, "node_modules");

// apiVersion -> [module namespace, folder of its .d.ts files].
const MODELS = {
  "postgresql.cnpg.io/v1": [cnpg, "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1"],
  "keda.sh/v1alpha1": [keda, "@kubernetes-models/keda/keda.sh/v1alpha1"],
};

const parsed = new Map();

function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

// The text from `open` (an index of "{" or "<") to its matching closer, exclusive of both.
function balanced(text, open) {
  const pairs = { "{": "}", "<": ">", "(": ")", "[": "]" };
  const stack = [];
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (pairs[c]) stack.push(pairs[c]);
    else if (c === stack[stack.length - 1]) {
      stack.pop();
      if (stack.length === 0) return text.slice(open + 1, i);
    }
  }
  throw new Error(`unbalanced type at ${open}`);
}

// `"key"?: type; ...` -> Map(key -> type text).
function fields(body) {
  const out = new Map();
  let i = 0;
  const key = /\s*"([^"]+)"\??\s*:\s*/y;
  while (i < body.length) {
    key.lastIndex = i;
    const m = key.exec(body);
    if (!m) break;
    let j = key.lastIndex;
    let depth = 0;
    const start = j;
    for (; j < body.length; j++) {
      const c = body[j];
      if ("{<([".includes(c)) depth++;
      else if ("}>)]".includes(c)) depth--;
      else if (c === ";" && depth === 0) break;
    }
    out.set(m[1], body.slice(start, j).trim());
    i = j + 1;
  }
  return out;
}

function resolveImport(fromFile, spec) {
  const base = spec.startsWith(".") ? path.resolve(path.dirname(fromFile), spec) : path.join(modules, spec);
  for (const candidate of [base.replace(/\.js$/, ".d.ts"), `${base}.d.ts`, path.join(base, "index.d.ts")]) {
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

// The interface a .d.ts file declares: {fields, imports, file}, or null for a plain type alias.
function declaration(file) {
  if (parsed.has(file)) return parsed.get(file);
  const text = stripComments(readFileSync(file, "utf8"));
  const imports = new Map();
  for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    for (const name of m[1].split(",").map((s) => s.trim()).filter(Boolean)) imports.set(name, m[2]);
  }
  const head = /export interface (\w+)(?:\s+extends\s+([^{]+))?\s*\{/.exec(text);
  let result = null;
  if (head) {
    const own = fields(balanced(text, head.index + head[0].length - 1));
    if (head[2] && head[2].includes("TypeMeta")) {
      own.set("apiVersion", "string");
      own.set("kind", "string");
    }
    result = { fields: own, imports, file };
  }
  parsed.set(file, result);
  return result;
}

function checkType(value, type, decl, where, errors) {
  type = type.trim();
  if (value === null || value === undefined) return;
  let m = /^Array<([\s\S]+)>$/.exec(type);
  if (m) {
    if (Array.isArray(value)) value.forEach((v, i) => checkType(v, m[1], decl, `${where}[${i}]`, errors));
    return;
  }
  m = /^\{\s*\[key: string\]:\s*([\s\S]+?);?\s*\}$/.exec(type);
  if (m) {
    if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) checkType(v, m[1], decl, `${where}.${k}`, errors);
    }
    return;
  }
  if (type.startsWith("{")) {
    checkObject(value, { fields: fields(balanced(type, 0)), imports: decl.imports, file: decl.file }, where, errors);
    return;
  }
  if (/^\w+$/.test(type) && decl.imports.has(type)) {
    const file = resolveImport(decl.file, decl.imports.get(type));
    const target = file && declaration(file);
    if (target) checkObject(value, target, where, errors);
  }
  // Primitives, literal unions and type aliases (IntOrString, Quantity): the model's validate() checks them.
}

function checkObject(value, decl, where, errors) {
  if (!value || typeof value !== "object" || Array.isArray(value)) return;
  for (const [k, v] of Object.entries(value)) {
    const type = decl.fields.get(k);
    if (type === undefined) errors.push(`${where}.${k}: unknown field`);
    else checkType(v, type, decl, `${where}.${k}`, errors);
  }
}

function validate(obj) {
  const kind = obj?.kind;
  const name = obj?.metadata?.name ?? "";
  const errors = [];
  const model = MODELS[obj?.apiVersion];
  const Model = model && model[0][kind];
  if (!Model || Model.kind !== kind) {
    errors.push(`no validator for ${obj?.apiVersion} ${kind}`);
    return { kind, name, errors };
  }
  try {
    new Model(obj).validate();
  } catch (err) {
    errors.push(String(err.message ?? err).split("\n").slice(0, 12).join("; "));
  }
  const decl = declaration(path.join(modules, model[1], `${kind}.d.ts`));
  if (!decl) errors.push(`no interface for ${kind}`);
  else checkObject(obj, decl, kind, errors);
  return { kind, name, errors };
}

const input = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(input.map(validate)));
