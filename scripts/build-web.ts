/**
 * Build the operator dashboard into web/dist, the directory the Worker serves as static assets
 * (wrangler.toml [assets]). One esbuild bundle for the script (the page's own code, the wire
 * protocol from edge/, zod and uPlot from npm) and one for the styles; no CDN, nothing fetched at
 * run time. index.html gets a content hash on its asset URLs so a browser never mixes versions.
 *
 * Files are written only when their bytes change: `wrangler dev` watches the assets directory and
 * reloads the Worker (dropping every WebSocket) on a change, so an unchanged rebuild must not
 * touch anything another running stack is serving.
 *
 * `npm run build:web` once; `npm run build:web -- --watch` rebuilds on every source change.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import * as esbuild from "esbuild";
import { REPO_ROOT } from "./dev-vars";

const WEB = resolve(REPO_ROOT, "web");
const OUT = resolve(WEB, "dist");

/** Static files copied as they are (besides index.html, which is templated). */
const STATIC_FILES = ["_headers", "favicon.svg"];

/** Write only changed bytes, through a temporary file and a rename, so a server reading the
 * directory (another stack's wrangler dev) never sees a half-written file. */
function writeIfChanged(path: string, bytes: Uint8Array | string): boolean {
  const next = Buffer.from(bytes);
  if (existsSync(path) && Buffer.compare(readFileSync(path), next) === 0) return false;
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, next);
  renameSync(tmp, path);
  return true;
}

const shortHash = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex").slice(0, 12);

const buildOptions: esbuild.BuildOptions = {
  absWorkingDir: REPO_ROOT,
  entryPoints: { app: resolve(WEB, "src/main.ts") },
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022", "chrome110", "firefox115", "safari16"],
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  outdir: OUT,
  write: false,
  logLevel: "warning",
};

/** Write the results of one build; returns the names of the files that changed. */
function emit(result: esbuild.BuildResult): string[] {
  mkdirSync(OUT, { recursive: true });
  const changed: string[] = [];
  const kept = new Set<string>();
  const hashes: Record<string, string> = {};
  for (const f of result.outputFiles ?? []) {
    const name = relative(OUT, f.path);
    kept.add(name);
    if (name === "app.js" || name === "app.css") hashes[name] = shortHash(f.contents);
    if (writeIfChanged(f.path, f.contents)) changed.push(name);
  }
  const html = readFileSync(resolve(WEB, "index.html"), "utf8")
    .replace("/app.js", `/app.js?v=${hashes["app.js"] ?? "0"}`)
    .replace("/app.css", `/app.css?v=${hashes["app.css"] ?? "0"}`);
  kept.add("index.html");
  if (writeIfChanged(join(OUT, "index.html"), html)) changed.push("index.html");
  for (const name of STATIC_FILES) {
    const src = resolve(WEB, name);
    if (!existsSync(src)) continue;
    kept.add(name);
    if (writeIfChanged(join(OUT, name), readFileSync(src))) changed.push(name);
  }
  // Leftovers of an older build (renamed chunks) would be served forever: remove them.
  for (const name of readdirSync(OUT)) {
    if (!kept.has(name) && !name.endsWith(".tmp")) {
      rmSync(join(OUT, name), { recursive: true, force: true });
      changed.push(`-${name}`);
    }
  }
  return changed;
}

async function main(): Promise<void> {
  const watch = process.argv.includes("--watch");
  const started = Date.now();
  if (!watch) {
    const result = await esbuild.build(buildOptions);
    const changed = emit(result);
    const size = (result.outputFiles ?? []).reduce((n, f) => n + (f.path.endsWith(".map") ? 0 : f.contents.length), 0);
    process.stdout.write(
      `build:web: web/dist in ${Date.now() - started} ms, ${(size / 1024).toFixed(0)} KiB` +
        ` (${changed.length ? `changed: ${changed.join(", ")}` : "unchanged"})\n`,
    );
    return;
  }
  const ctx = await esbuild.context({
    ...buildOptions,
    plugins: [
      {
        name: "emit",
        setup(build) {
          build.onEnd((result) => {
            if (result.errors.length) return;
            const changed = emit(result);
            process.stdout.write(`build:web: ${changed.length ? changed.join(", ") : "unchanged"}\n`);
          });
        },
      },
    ],
  });
  await ctx.watch();
  process.stdout.write("build:web: watching web/src (Ctrl-C stops)\n");
}

main().catch((err: unknown) => {
  process.stderr.write(`build:web failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
