// Builds the browser client from ../client.ts with the pinned TypeScript
// (package.json here; TypeScript 7 cannot emit ES5):
//
//   node build.mjs OUTDIR
//
// writes OUTDIR/client.js (ES2020 module), client.d.ts (the declarations,
// with their doc comments) and client.legacy.js (ES5 classic script
// defining window.Switchboard). Both scripts drop the source's comments:
// browsers download them, and the API is documented in client.d.ts and
// docs/client.md, the code in client.ts. It type-checks first, against
// the ES5 library and the DOM only, so an ES2015 built-in in the source
// fails the build.
// make client runs it into edge/webclient; the package's tests run it
// into a temporary directory and compare (see ../doc.go).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(here, "..", "client.ts");
const out = process.argv[2];
if (!out) {
  console.error("usage: node build.mjs OUTDIR");
  process.exit(2);
}

const exportLine = "export { connect, Client, SwitchboardError };\n";
const generated = "// Code generated from client.ts by make client (edge/webclient/_build/build.mjs, TypeScript " + ts.version + "). DO NOT EDIT.\n";

const base = {
  strict: true,
  lib: ["lib.es5.d.ts", "lib.dom.d.ts"],
  types: [],
  moduleResolution: ts.ModuleResolutionKind.Classic,
  useDefineForClassFields: false,
  newLine: ts.NewLineKind.LineFeed,
  noUnusedLocals: true,
  noUnusedParameters: false,
  skipLibCheck: true,
};

// emit compiles the source with options and returns the files it writes,
// by extension.
function emit(options) {
  const program = ts.createProgram([src], { ...base, ...options });
  const diags = ts.getPreEmitDiagnostics(program);
  if (diags.length) {
    console.error(ts.formatDiagnosticsWithColorAndContext(diags, {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => process.cwd(),
      getNewLine: () => "\n",
    }));
    process.exit(1);
  }
  const files = {};
  const res = program.emit(undefined, (name, text) => { files[path.extname(name.replace(/\.d\.ts$/, ".dts"))] = text; });
  if (res.emitSkipped) {
    console.error("build: emit skipped");
    process.exit(1);
  }
  return files;
}

// removeComments would strip the declarations' docs too: they are
// emitted on their own.
const modern = emit({ target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.ES2020, removeComments: true, outDir: "/out" });
const types = emit({ target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.ES2020, declaration: true, emitDeclarationOnly: true, stripInternal: true, outDir: "/out" });
const legacy = emit({ target: ts.ScriptTarget.ES5, module: ts.ModuleKind.ES2015, removeComments: true, outDir: "/out" });

// withoutExport returns the module without its one export statement, the
// last line.
function withoutExport(js, what) {
  const n = js.split("export ").length - 1;
  if (n !== 1 || !js.endsWith(exportLine)) {
    console.error(`build: the ${what} output must end with ${JSON.stringify(exportLine)} and export nothing else (found ${n} "export ")`);
    process.exit(1);
  }
  return js.slice(0, -exportLine.length);
}
withoutExport(modern[".js"], "ES2020"); // the classic build (webclient.go) relies on it

// The modern module is indented by two spaces, as the repository's
// JavaScript is; the ES5 build drops the indentation (ES5 has no
// template literals, and a string spanning lines, which would need a
// line continuation, fails the build). Both rewrite leading whitespace
// line by line, which would change the text of a template literal
// spanning lines: the source may have none.
function noMultilineTemplates(js, what) {
  const sf = ts.createSourceFile("client.js", js, ts.ScriptTarget.ES2020, true, ts.ScriptKind.JS);
  const bad = [];
  const visit = (node) => {
    if ((ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateExpression(node)) && node.getText(sf).includes("\n")) {
      bad.push(sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  if (bad.length) {
    console.error(`build: the ${what} output has template literals spanning lines (output lines ${bad.join(", ")}), which re-indenting would change; write them with "\\n" in client.ts`);
    process.exit(1);
  }
}
noMultilineTemplates(modern[".js"], "ES2020");
const modernJS = modern[".js"].replace(/^( {4})+/gm, (m) => " ".repeat(m.length / 2));
let legacyBody = withoutExport(legacy[".js"], "ES5");
if (/\\\n/.test(legacyBody)) {
  console.error("build: the ES5 output has a line continuation; its indentation cannot be stripped safely");
  process.exit(1);
}
legacyBody = legacyBody.replace(/^[ \t]+/gm, "");

const legacyJS =
  generated +
  "// The ES5 classic-script build: defines window.Switchboard. Source and docs: /client.js, docs/client.md.\n" +
  "(function (global) {\n\"use strict\";\n" +
  legacyBody +
  "global.Switchboard = { connect: connect, Client: Client, SwitchboardError: SwitchboardError };\n" +
  "})(typeof window !== \"undefined\" ? window : this);\n";

fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, "client.js"), generated + "// Source: edge/webclient/client.ts. API docs: /client.d.ts, docs/client.md.\n" + modernJS);
fs.writeFileSync(path.join(out, "client.d.ts"), generated + types[".dts"]);
fs.writeFileSync(path.join(out, "client.legacy.js"), legacyJS);
