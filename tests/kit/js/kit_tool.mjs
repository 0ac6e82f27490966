// Test helper for tests/kit: runs the Node-side tools on behalf of pytest.
// Reads one JSON request on stdin, writes one JSON answer on stdout.
//   {"op": "templates", "cases": [{"template": path, "event_type", "body", "webhook_id"}]}
//       -> [{"ok": true, "webhook": {...}} | {"ok": false, "error": "..."}]   (each in a fresh vm context)
//   {"op": "parse_python", "files": [path]}        -> {path: Windmill's parse_python() result}
//   {"op": "validate_yaml", "files": [{"path", "type": "flow" | "schedule"}]} -> {path: [error, ...]}
//   {"op": "load_yaml", "files": [path]}           -> {path: parsed document}
// Tools come from kit/node_modules (`cd kit && npm install`, run by `make install-dev`).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import vm from "node:vm";

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.resolve(here, "../../../kit/node_modules");
const require = createRequire(path.join(modules, "noop.js"));

function runTemplates(cases) {
  return cases.map(({ template, event_type, body, webhook_id }) => {
    const source = readFileSync(template, "utf8");
    const webhook = JSON.stringify({
      eventType: event_type,
      payload: body,
      url: "https://windmill.example/api/w/demo/jobs/run/p/f/dodo/target",
      method: "POST",
      headers: {},
    });
    // Same contract as headrace's sandbox: a fresh global scope per event, eventType and webhookId
    // read-only, the result leaves as JSON.
    const program = `${source}
;(function () {
  const webhook = JSON.parse(__input);
  Object.defineProperty(webhook, "eventType", { value: webhook.eventType, writable: false, enumerable: true });
  Object.defineProperty(webhook, "webhookId", { value: __webhookId, writable: false, enumerable: false });
  return JSON.stringify(handler(webhook));
})()`;
    try {
      const out = vm.runInNewContext(program, { __input: webhook, __webhookId: webhook_id }, { timeout: 1000 });
      return { ok: true, webhook: JSON.parse(out) };
    } catch (error) {
      return { ok: false, error: String(error && error.stack ? error.stack : error) };
    }
  });
}

async function parsePython(files) {
  const pkg = path.join(modules, "windmill-parser-wasm-py");
  const { initSync, parse_python } = await import(pathToFileURL(path.join(pkg, "windmill_parser_wasm.js")).href);
  initSync({ module: readFileSync(path.join(pkg, "windmill_parser_wasm_bg.wasm")) });
  return Object.fromEntries(files.map((file) => [file, JSON.parse(parse_python(readFileSync(file, "utf8")))]));
}

function validateYaml(files) {
  const { WindmillYamlValidator } = require("windmill-yaml-validator");
  const validator = new WindmillYamlValidator();
  return Object.fromEntries(
    files.map(({ path: file, type }) => {
      const { errors } = validator.validate(readFileSync(file, "utf8"), { type });
      return [file, errors.map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`)];
    }),
  );
}

function loadYaml(files) {
  const yaml = require("js-yaml");
  return Object.fromEntries(files.map((file) => [file, yaml.safeLoad(readFileSync(file, "utf8"))]));
}

const request = JSON.parse(readFileSync(0, "utf8"));
const ops = {
  templates: () => runTemplates(request.cases),
  parse_python: () => parsePython(request.files),
  validate_yaml: () => validateYaml(request.files),
  load_yaml: () => loadYaml(request.files),
};
if (!(request.op in ops)) {
  console.error(`unknown op ${request.op}`);
  process.exit(2);
}
process.stdout.write(JSON.stringify(await ops[request.op]()));
