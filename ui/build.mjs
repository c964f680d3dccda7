// Bundles the UI into the Python package (src/linkprobe/ui/static), which ships it: no node at run time.
// `node build.mjs --check` builds into a temporary directory and fails if the shipped copy differs.
import * as esbuild from "esbuild";
import { cpSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const SHIPPED = new URL("../src/linkprobe/ui/static", import.meta.url).pathname;
const SWAGGER = ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"];
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "linkprobe-ui-")) : SHIPPED;

async function build(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "swagger"), { recursive: true });
  await esbuild.build({
    entryPoints: { app: "src/main.ts", docs: "src/docs.ts" },
    outdir: dir,
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2020",
    legalComments: "none",
    logLevel: "warning",
  });
  cpSync("public", dir, { recursive: true });
  for (const name of SWAGGER) cpSync(join("node_modules/swagger-ui-dist", name), join(dir, "swagger", name));
}

function files(dir) {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((name) => statSync(join(dir, name)).isFile() && !name.endsWith(".py"))
    .sort();
}

function differences(a, b) {
  const left = files(a), right = files(b);
  const names = [...new Set([...left, ...right])];
  return names.filter((n) => !left.includes(n) || !right.includes(n)
    || !readFileSync(join(a, n)).equals(readFileSync(join(b, n))));
}

await build(out);
if (check) {
  const stale = differences(out, SHIPPED);
  rmSync(out, { recursive: true, force: true });
  if (stale.length) {
    console.error(`the shipped UI in ${relative(process.cwd(), SHIPPED)} is stale (run make ui): ${stale.join(", ")}`);
    process.exit(1);
  }
  console.log("the shipped UI matches its sources");
}
