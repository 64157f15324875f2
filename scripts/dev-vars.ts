/**
 * The local stack's configuration files: `.dev.vars` (read by `wrangler dev` for the edge's secrets)
 * and the AUTH_SECRET the token CLI and the launcher sign with, so both agree with the edge.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const DEV_VARS_PATH = resolve(REPO_ROOT, ".dev.vars");

/** Parse dotenv-style text: KEY=VALUE lines, `#` comments, optional `export `, single or double
 * quotes (double quotes understand \n). Later keys win, as in wrangler. */
export function parseDevVars(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!;
    if (/^"(.*)"$/.test(v)) v = v.slice(1, -1).replace(/\\n/g, "\n").replace(/\\"/g, '"');
    else if (/^'(.*)'$/.test(v)) v = v.slice(1, -1);
    else v = v.replace(/\s+#.*$/, "").trim();
    out[m[1]!] = v;
  }
  return out;
}

/** `.dev.vars` as a record; empty when the file does not exist. */
export function readDevVars(path = DEV_VARS_PATH): Record<string, string> {
  try {
    return parseDevVars(readFileSync(path, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw err;
  }
}

/** The signing secret: explicit value, else env AUTH_SECRET, else AUTH_SECRET in .dev.vars. */
export function resolveAuthSecret(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  devVarsPath = DEV_VARS_PATH,
): { secret: string; source: string } | null {
  if (explicit) return { secret: explicit, source: "--secret" };
  if (env.AUTH_SECRET) return { secret: env.AUTH_SECRET, source: "env AUTH_SECRET" };
  const v = readDevVars(devVarsPath).AUTH_SECRET;
  return v ? { secret: v, source: devVarsPath } : null;
}
