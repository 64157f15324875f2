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
 * The deployment's base map (tile server under the map) is set at build time, into index.html's
 * meta tags: DASHBOARD_TILE_URL (an OpenStreetMap-style {z}/{x}/{y} template), DASHBOARD_TILE_ATTRIBUTION
 * and DASHBOARD_TILE_MAX_ZOOM. Unset: the map is the offline grid. An operator can override it per
 * browser (?tiles=… or the map settings).
 *
 * Size: the script is reported raw and gzipped. zod must come in without its 60-odd locale
 * modules (schemas are built with `import * as z from "zod"`, which esbuild tree-shakes; a
 * `import { z } from "zod"` anywhere in the bundle pulls every locale in), so the build warns,
 * naming the importer, when a locale other than English is in the bundle.
 *
 * `npm run build:web` once; `npm run build:web -- --watch` rebuilds on every source change.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { gzipSync } from "node:zlib";
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
  metafile: true,
  logLevel: "warning",
};

/** index.html's deployment settings, from the environment at build time. */
function basemapMeta(env: NodeJS.ProcessEnv): Record<string, string> {
  return {
    "dronefleet:tile-url": env.DASHBOARD_TILE_URL?.trim() ?? "",
    "dronefleet:tile-attribution": env.DASHBOARD_TILE_ATTRIBUTION?.trim() ?? "",
    "dronefleet:tile-max-zoom": env.DASHBOARD_TILE_MAX_ZOOM?.trim() ?? "",
  };
}

const escapeAttr = (v: string) => v.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Fill `<meta name="…" content="">` tags of index.html with `values`. */
function fillMeta(html: string, values: Record<string, string>): string {
  let out = html;
  for (const [name, value] of Object.entries(values)) {
    const tag = new RegExp(`<meta name="${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}" content="[^"]*"`);
    if (!tag.test(out)) throw new Error(`web/index.html has no <meta name="${name}" content="">`);
    out = out.replace(tag, `<meta name="${name}" content="${escapeAttr(value)}"`);
  }
  return out;
}

/** zod locales in the bundle besides English, with the repository files that import zod in a way
 * that keeps them (anything but `import * as z`). */
function localeLeak(meta: esbuild.Metafile | undefined): string[] {
  const app = Object.entries(meta?.outputs ?? {}).find(([f]) => f.endsWith("app.js"))?.[1];
  if (!meta || !app) return [];
  // Modules esbuild read but shook out have no bytes in the output.
  const locales = Object.entries(app.inputs)
    .filter(([f, v]) => v.bytesInOutput > 0 && /zod\/v4\/locales\/(?!en\.js|index\.js)/.test(f))
    .map(([f]) => f);
  if (!locales.length) return [];
  const importers = Object.entries(meta.inputs)
    .filter(([f, v]) => !f.includes("node_modules/") && v.imports.some((i) => /node_modules\/zod\//.test(i.path)))
    .map(([f]) => f);
  return [`${locales.length} zod locale modules are in app.js; check how these import zod: ${importers.join(", ")}`];
}

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
  const html = fillMeta(readFileSync(resolve(WEB, "index.html"), "utf8"), basemapMeta(process.env))
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
    const js = (result.outputFiles ?? []).find((f) => relative(OUT, f.path) === "app.js");
    const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
    process.stdout.write(
      `build:web: web/dist in ${Date.now() - started} ms, app.js ${js ? `${kib(js.contents.length)} (${kib(gzipSync(js.contents).length)} gzipped)` : "missing"}` +
        ` (${changed.length ? `changed: ${changed.join(", ")}` : "unchanged"})\n`,
    );
    for (const w of localeLeak(result.metafile)) process.stderr.write(`build:web: warning: ${w}\n`);
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
            for (const w of localeLeak(result.metafile)) process.stderr.write(`build:web: warning: ${w}\n`);
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
