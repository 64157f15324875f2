/**
 * The relay as its own package: everything relay/cli.ts loads, followed through relative imports,
 * lies in relay/, edge/protocol/ or edge/domain/, and every package it imports is a dependency of
 * relay/package.json, so a relay-only install (`npm ci --omit=dev -w relay`) runs it. Inside the
 * relay, sources and the link stay apart: a source never imports the link, and the link knows
 * sources only through relay/sources/source.ts.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { z } from "zod";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SPECIFIER = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|(?:^|\n)\s*import\s*["']([^"']+)["']/g;

function specifiers(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(SPECIFIER)].map((m) => m[1] ?? m[2] ?? "").filter((s) => s !== "");
}

function resolveTs(from: string, spec: string): string {
  const base = resolve(dirname(from), spec);
  for (const candidate of [base, `${base}.ts`, join(base, "index.ts")]) {
    if (candidate.endsWith(".ts") && existsSync(candidate)) return candidate;
  }
  throw new Error(`${relative(ROOT, from)}: cannot resolve ${spec}`);
}

/** Every file reached from `entry` by relative imports (repo-relative paths), and each file's bare imports. */
function graph(entry: string): Map<string, { local: string[]; packages: string[] }> {
  const seen = new Map<string, { local: string[]; packages: string[] }>();
  const todo = [resolve(ROOT, entry)];
  for (let file = todo.pop(); file !== undefined; file = todo.pop()) {
    const key = relative(ROOT, file);
    if (seen.has(key)) continue;
    const specs = specifiers(file);
    const local = specs.filter((s) => s.startsWith(".")).map((s) => resolveTs(file, s));
    seen.set(key, { local: local.map((f) => relative(ROOT, f)), packages: specs.filter((s) => !s.startsWith(".")) });
    todo.push(...local);
  }
  return seen;
}

const RelayPackage = z.object({
  dependencies: z.record(z.string(), z.string()),
  optionalDependencies: z.record(z.string(), z.string()).optional(),
  devDependencies: z.record(z.string(), z.string()).optional(),
});

describe("the relay package", () => {
  const files = graph("relay/cli.ts");

  it("loads only relay/, edge/protocol/ and edge/domain/", () => {
    expect(files.size).toBeGreaterThan(15);
    const outside = [...files.keys()].filter((f) => !/^(relay|edge\/protocol|edge\/domain)\//.test(f));
    expect(outside).toEqual([]);
  });

  it("declares every package it imports in relay/package.json (node: builtins aside)", () => {
    const pkg = RelayPackage.parse(JSON.parse(readFileSync(join(ROOT, "relay/package.json"), "utf8")));
    expect(pkg.devDependencies).toBeUndefined(); // a field install has no dev step
    const declared = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies ?? {})]);
    const used = new Set([...files.values()].flatMap((f) => f.packages).filter((p) => !p.startsWith("node:")));
    expect([...used].filter((p) => !declared.has(p))).toEqual([]);
    // tsx runs the TypeScript (relay-start.sh, `npm start`); rclnodejs is loaded at run time by ros2/.
    expect([...declared].sort()).toEqual([...used, "tsx", "rclnodejs"].sort());
  });

  it("keeps sources and the link apart", () => {
    for (const [file, { local }] of files) {
      if (file.startsWith("relay/sources/")) expect(local.filter((f) => f.startsWith("relay/link/")), file).toEqual([]);
      if (file.startsWith("relay/link/")) expect(local.filter((f) => f.startsWith("relay/sources/") && f !== "relay/sources/source.ts"), file).toEqual([]);
    }
  });
});
