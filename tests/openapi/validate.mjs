// openapi.yaml against the OpenAPI specification, with swagger-parser: the document
// against the official JSON schema of the version it declares, then the rules that
// schema cannot say (unique operationIds, path parameters declared, $refs resolve).
// So that the check itself can fail, it also runs on two broken copies (3.1's numeric
// exclusiveMinimum under "openapi: 3.0.3", and a $ref to nothing) and expects both
// refused. Prints one "ok"/"FAIL" line per check and "[openapi] N ok, M failed".
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SwaggerParser from "@apidevtools/swagger-parser";

const root = process.argv[2] || ".";
const text = readFileSync(join(root, "openapi.yaml"), "utf8");
let ok = 0, bad = 0;
const report = (good, name, why) => {
  if (good) { ok++; console.log(`ok   ${name}`); } else { bad++; console.log(`FAIL ${name}${why ? `: ${why}` : ""}`); }
};
// Broken copies are written to a scratch folder and read back by the parser, as the
// real file is.
const scratch = mkdtempSync(join(tmpdir(), "convscope-openapi-"));
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));
let copies = 0;
const load = (yamlText) => {
  if (yamlText === text) return join(root, "openapi.yaml");
  const path = join(scratch, `copy${copies++}.yaml`);
  writeFileSync(path, yamlText);
  return path;
};

try {
  const api = await SwaggerParser.validate(load(text));
  report(true, `openapi.yaml is valid OpenAPI ${api.openapi} (${Object.keys(api.paths).length} paths)`);
} catch (e) {
  report(false, "openapi.yaml is valid OpenAPI", e.message.split("\n").slice(0, 6).join(" | "));
}

const broken = [
  ["a numeric exclusiveMinimum (OpenAPI 3.1) under 3.0.3", (t) =>
    t.replace(/^(\s*)(learning_rate: \{type: number,)[^}]*\}/m, "$1$2 exclusiveMinimum: 0}")],
  ["a $ref to a missing schema", (t) => t.replace('$ref: "#/components/schemas/Epoch"', '$ref: "#/components/schemas/Nope"')],
];
for (const [what, spoil] of broken) {
  const t = spoil(text);
  if (t === text) { report(false, `the check refuses ${what}`, "the copy could not be made (openapi.yaml changed?)"); continue; }
  try {
    await SwaggerParser.validate(load(t));
    report(false, `the check refuses ${what}`, "accepted");
  } catch (e) {
    // Refused for what was spoiled, not for some other reason.
    const msg = String(e.message);
    const why = /exclusiveMinimum/.test(what) ? /exclusiveMinimum|learning_rate/.test(msg) : /Nope|resolve|pointer/i.test(msg);
    report(why, `the check refuses ${what}`, why ? "" : msg.split("\n")[0]);
  }
}
console.log(`[openapi] ${ok} ok, ${bad} failed`);
process.exit(bad ? 1 : 0);
