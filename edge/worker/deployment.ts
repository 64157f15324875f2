/**
 * Safe defaults outside local development. ENVIRONMENT is "development" only at the top level of
 * wrangler.toml (wrangler dev, tests); staging and production set their own, and a Worker with none
 * (an environment added without its [vars]) is held to the production rules. There the edge:
 * - serves nothing but /health while AUTH_SECRET is unset, shorter than 32 bytes, or the
 *   development secret committed in .dev.vars — anyone could mint tokens with those;
 * - serves nothing but /health while IDENTITY_CONFIG is set but invalid (in every environment:
 *   a sign-in that silently never works is worse than a loud refusal);
 * - refuses dashboard sockets while ALLOWED_ORIGINS is "*" (or unset), or names something that is
 *   not an origin: any page a signed-in operator visits could otherwise open one with their
 *   Access cookie.
 * Each refusal answers 503 `misconfigured` and logs, once per isolate, what to run to fix it.
 */
import { log } from "../domain/log";
import type { Env } from "./env";
import { identityConfig } from "./sso-config";

/** The AUTH_SECRET committed in .dev.vars for `wrangler dev` and tests: public, so never valid in a deployment. */
export const DEVELOPMENT_SECRET = "dev-secret-change-me-0123456789abcdef";
export const MIN_SECRET_BYTES = 32;

export function isDevelopment(env: Pick<Env, "ENVIRONMENT">): boolean {
  return env.ENVIRONMENT === "development";
}

function envFlag(env: Pick<Env, "ENVIRONMENT">): string {
  return env.ENVIRONMENT && /^[a-z0-9_-]+$/i.test(env.ENVIRONMENT) ? env.ENVIRONMENT : "<environment>";
}

export type Problem = { message: string; fix: string };

/** Why this Worker may not serve at all (every route but /health), or null. */
export function serveProblem(env: Env): Problem | null {
  const cfg = identityConfig(env.IDENTITY_CONFIG);
  if (cfg && !cfg.ok) return { message: cfg.error, fix: "correct IDENTITY_CONFIG in wrangler.toml (deploy/DEPLOY.md §1.5) and deploy again" };
  if (isDevelopment(env)) return null;
  const secret = env.AUTH_SECRET ?? "";
  const bytes = new TextEncoder().encode(secret).byteLength;
  const why =
    secret === ""
      ? "AUTH_SECRET is not set"
      : secret === DEVELOPMENT_SECRET
        ? "AUTH_SECRET is the development secret committed in .dev.vars"
        : bytes < MIN_SECRET_BYTES
          ? `AUTH_SECRET is shorter than ${MIN_SECRET_BYTES} bytes`
          : null;
  if (!why) return null;
  return {
    message: `${why}; outside local development the edge needs a random secret of at least ${MIN_SECRET_BYTES} bytes`,
    fix: `openssl rand -base64 48 | npx wrangler secret put AUTH_SECRET --env ${envFlag(env)}`,
  };
}

/** Why dashboard sockets are refused whatever their Origin, or null. */
export function originsProblem(env: Env): Problem | null {
  if (isDevelopment(env)) return null;
  const fix = `set ALLOWED_ORIGINS in [env.${envFlag(env)}.vars] of wrangler.toml to the dashboard's origin, e.g. "https://fleet.example.com", and deploy again`;
  const list = (env.ALLOWED_ORIGINS ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (list.length === 0 || list.includes("*")) {
    return { message: `ALLOWED_ORIGINS is "${env.ALLOWED_ORIGINS ?? ""}": outside local development it must name the dashboard's origins`, fix };
  }
  for (const o of list) {
    let ok = false;
    try {
      const u = new URL(o);
      ok = (u.protocol === "https:" || u.protocol === "http:") && u.origin === o.replace(/\/+$/, "").toLowerCase();
    } catch {
      ok = false;
    }
    if (!ok) return { message: `ALLOWED_ORIGINS entry "${o.slice(0, 100)}" is not an origin (scheme://host[:port])`, fix };
  }
  return null;
}

const logged = new Set<string>();

/** Log a problem once per isolate (every refused request would otherwise repeat it). */
export function reportProblem(p: Problem, what: string): void {
  const key = `${p.message}\n${p.fix}`;
  if (logged.has(key)) return;
  if (logged.size > 32) logged.clear();
  logged.add(key);
  log("error", `edge misconfigured: ${what} refused. ${p.message}. Fix: ${p.fix}`, { problem: p.message, fix: p.fix });
}
