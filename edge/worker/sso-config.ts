/**
 * IDENTITY_CONFIG: which identity providers the edge trusts (Cloudflare Access, any OIDC issuer)
 * and how a signed-in person's groups, email or subject become a role in fleets. Parsed with zod
 * at first use (the first request after a deploy), with every problem listed by its path, so a typo
 * in wrangler.toml is one clear 503 and log line rather than a sign-in that silently never works.
 *
 * The mapping is pure: grantsFor() picks the rules that match a person, roleInFleet() the highest
 * role those rules give in one fleet. A person no rule matches has no access at all.
 *
 * Example (JSON text in wrangler.toml `[env.production.vars] IDENTITY_CONFIG = '''…'''`):
 *   {
 *     "providers": [
 *       { "name": "access", "kind": "cloudflare-access", "team_domain": "acme.cloudflareaccess.com",
 *         "audience": "<the Access application's AUD tag>" }
 *     ],
 *     "rules": [
 *       { "group": "fleet-ops-zurich", "role": "operator", "fleets": ["zurich-*"] },
 *       { "group": "fleet-admins", "role": "admin", "fleets": "*" },
 *       { "email": "*@acme.example", "role": "viewer", "fleets": "*" }
 *     ]
 *   }
 */
import * as z from "zod";
import type { Role } from "./auth";

/** Signature algorithms a provider may use (asymmetric only: HS256 is the edge's own tokens). */
export const SSO_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"] as const;
export type SsoAlgorithm = (typeof SSO_ALGORITHMS)[number];

/** Roles a person may be given (relays sign in with their own HS256 token, never through SSO). */
const PERSON_ROLES = ["viewer", "operator", "admin"] as const satisfies readonly Role[];
const RANK: Record<(typeof PERSON_ROLES)[number], number> = { viewer: 1, operator: 2, admin: 3 };

const isLoopback = (host: string) => host === "localhost" || host === "127.0.0.1" || host === "[::1]";

/** https everywhere; plain http only to this machine (local JWKS servers in tests and development). */
const KeyUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === "https:" || (u.protocol === "http:" && isLoopback(u.hostname));
  } catch {
    return false;
  }
}, "must be an https:// URL (http:// only for localhost)");

const Glob = z.string().min(1).max(256);
const FleetPattern = z.string().regex(/^[a-z0-9_*-]{1,63}$/, "fleet pattern: a-z 0-9 _ - and * (any run of characters)");
const ClaimPath = z.string().regex(/^[A-Za-z0-9_:.-]{1,128}$/, "claim name, or a dotted path such as custom.groups");

const Provider = z
  .object({
    /** Short name, shown in /v1/me and usable in rules ("provider"). */
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "name: 1-32 of a-z 0-9 _ -"),
    kind: z.enum(["cloudflare-access", "oidc"]),
    /** cloudflare-access: "<team>.cloudflareaccess.com"; sets issuer and jwks_url unless given. */
    team_domain: z.string().regex(/^[a-z0-9.-]+$/i, "team_domain: a host name such as acme.cloudflareaccess.com").optional(),
    /** Exact `iss` of the provider's tokens; also how a token finds its provider. */
    issuer: z.string().min(1).max(512).optional(),
    /** Where the provider publishes its public keys (JWKS). */
    jwks_url: KeyUrl.optional(),
    /** Accepted `aud`: the Access application's AUD tag, or the OIDC client id. */
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(16)]),
    algorithms: z.array(z.enum(SSO_ALGORITHMS)).min(1).optional(),
    /** Claims tried in order for the person's identity (the audit log's `sub`). */
    identity_claims: z.array(ClaimPath).min(1).max(8).optional(),
    /** Claim holding the person's groups (a list of strings, or one string). */
    groups_claim: ClaimPath.optional(),
  })
  .strict();

const Rule = z
  .object({
    /** The person is in a group matching this pattern (`*` matches any run of characters). */
    group: Glob.optional(),
    /** The person's email matches this pattern, case-insensitively ("*@acme.example"). */
    email: Glob.optional(),
    /** The token's `sub` is exactly this. */
    subject: z.string().min(1).max(256).optional(),
    /** Only for tokens of this provider (by name). */
    provider: z.string().min(1).max(32).optional(),
    role: z.enum(PERSON_ROLES),
    /** "*" or fleet id patterns ("zurich-*"). */
    fleets: z.union([z.literal("*"), z.array(FleetPattern).min(1).max(100)]),
  })
  .strict()
  .refine((r) => r.group !== undefined || r.email !== undefined || r.subject !== undefined, "a rule needs group, email or subject");

const Config = z
  .object({
    providers: z.array(Provider).min(1).max(8),
    rules: z.array(Rule).max(500),
    /** Seconds of leeway on exp/nbf for clock skew (default 30, as for HS256 tokens). */
    clock_tolerance_s: z.number().int().min(0).max(300).optional(),
    jwks: z
      .object({
        /** Keys older than this are fetched again before use; a failed fetch then refuses (default 600). */
        cache_max_age_s: z.number().int().min(0).max(86_400).optional(),
        /** Least time between fetches that an unknown `kid` may trigger (default 30). */
        cooldown_s: z.number().int().min(0).max(3600).optional(),
        /** Timeout of one JWKS fetch (default 5000). */
        timeout_ms: z.number().int().min(100).max(30_000).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type ProviderConfig = {
  name: string;
  kind: "cloudflare-access" | "oidc";
  issuer: string;
  jwksUrl: string;
  audience: string[];
  algorithms: SsoAlgorithm[];
  identityClaims: string[];
  groupsClaim: string;
};
export type RuleConfig = z.infer<typeof Rule>;
export type IdentityConfig = {
  providers: ProviderConfig[];
  rules: RuleConfig[];
  clockToleranceS: number;
  jwks: { cacheMaxAgeMs: number; cooldownMs: number; timeoutMs: number };
};

export type ConfigResult = { ok: true; config: IdentityConfig } | { ok: false; error: string };

function issuesText(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((i) => {
      const path = i.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
      return `IDENTITY_CONFIG${path}: ${i.message}`;
    })
    .join("; ");
}

/** Validate IDENTITY_CONFIG (JSON text, or the object wrangler makes of a TOML table). */
export function parseIdentityConfig(raw: unknown): ConfigResult {
  let value = raw;
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw);
    } catch (err) {
      return { ok: false, error: `IDENTITY_CONFIG is not valid JSON: ${err instanceof Error ? err.message : String(err)}` };
    }
  }
  const r = Config.safeParse(value);
  if (!r.success) return { ok: false, error: issuesText(r.error.issues) };
  const c = r.data;
  const errors: string[] = [];
  const providers: ProviderConfig[] = [];
  c.providers.forEach((p, i) => {
    const at = `IDENTITY_CONFIG.providers[${i}]`;
    const access = p.kind === "cloudflare-access";
    const team = p.team_domain?.toLowerCase().replace(/\.$/, "");
    const issuer = p.issuer ?? (access && team ? `https://${team}` : undefined);
    const jwksUrl = p.jwks_url ?? (access && team ? `https://${team}/cdn-cgi/access/certs` : undefined);
    if (!issuer) errors.push(`${at}: needs "issuer"${access ? ' (or "team_domain")' : ""}`);
    if (!jwksUrl) errors.push(`${at}: needs "jwks_url"${access ? ' (or "team_domain")' : ""}`);
    if (!access && p.team_domain) errors.push(`${at}: "team_domain" is for kind "cloudflare-access"`);
    if (!issuer || !jwksUrl) return;
    providers.push({
      name: p.name,
      kind: p.kind,
      issuer,
      jwksUrl,
      audience: typeof p.audience === "string" ? [p.audience] : p.audience,
      // Access signs with RS256 only; an OIDC provider with any of the common asymmetric algorithms.
      algorithms: p.algorithms ?? (access ? ["RS256"] : ["RS256", "ES256", "EdDSA", "Ed25519"]),
      // Access service tokens carry no email; their identity is the client id (common_name).
      identityClaims: p.identity_claims ?? (access ? ["email", "common_name", "sub"] : ["email", "sub"]),
      // Access passes the identity provider's OIDC claims under `custom`.
      groupsClaim: p.groups_claim ?? (access ? "custom.groups" : "groups"),
    });
  });
  const dup = (xs: string[]) => xs.find((x, i) => xs.indexOf(x) !== i);
  const dupName = dup(providers.map((p) => p.name));
  if (dupName) errors.push(`IDENTITY_CONFIG.providers: name "${dupName}" is used twice`);
  // A token finds its provider by `iss`, so two providers may not share one.
  const dupIss = dup(providers.map((p) => p.issuer));
  if (dupIss) errors.push(`IDENTITY_CONFIG.providers: issuer "${dupIss}" is used twice`);
  c.rules.forEach((rule, i) => {
    if (rule.provider !== undefined && !c.providers.some((p) => p.name === rule.provider)) {
      errors.push(`IDENTITY_CONFIG.rules[${i}].provider: no provider named "${rule.provider}"`);
    }
  });
  if (errors.length) return { ok: false, error: errors.join("; ") };
  return {
    ok: true,
    config: {
      providers,
      rules: c.rules,
      clockToleranceS: c.clock_tolerance_s ?? 30,
      jwks: {
        cacheMaxAgeMs: (c.jwks?.cache_max_age_s ?? 600) * 1000,
        cooldownMs: (c.jwks?.cooldown_s ?? 30) * 1000,
        timeoutMs: c.jwks?.timeout_ms ?? 5000,
      },
    },
  };
}

const parsed = new Map<unknown, ConfigResult>();

/** parseIdentityConfig, once per distinct value (the env is the same object request after request). */
export function identityConfig(raw: unknown): ConfigResult | null {
  if (raw === undefined || raw === null || raw === "") return null;
  const key = typeof raw === "string" ? raw : JSON.stringify(raw);
  let r = parsed.get(key);
  if (!r) {
    r = parseIdentityConfig(raw);
    // One config per deployment; tests use a few. Bounded either way.
    if (parsed.size >= 16) parsed.clear();
    parsed.set(key, r);
  }
  return r;
}

// ------------------------------------------------------------------ people and their grants

/** Who a verified provider token says the person is. */
export type Person = { provider: string; sub: string; identity: string; email: string | null; groups: string[] };
export type Grant = { role: (typeof PERSON_ROLES)[number]; fleets: "*" | string[] };

function claimAt(payload: Record<string, unknown>, path: string): unknown {
  if (path in payload) return payload[path];
  let v: unknown = payload;
  for (const part of path.split(".")) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** The person in a verified payload; null when none of the identity claims is a usable string. */
export function personFrom(p: ProviderConfig, payload: Record<string, unknown>): Person | null {
  let identity: string | null = null;
  for (const name of p.identityClaims) {
    const v = claimAt(payload, name);
    if (typeof v === "string" && v.trim() !== "") {
      identity = v.trim();
      break;
    }
  }
  if (!identity || identity.length > 254) return null;
  const rawGroups = claimAt(payload, p.groupsClaim);
  const groups = (Array.isArray(rawGroups) ? rawGroups : typeof rawGroups === "string" ? [rawGroups] : [])
    .filter((g): g is string => typeof g === "string")
    .slice(0, 500);
  const email = typeof payload.email === "string" ? payload.email : null;
  return { provider: p.name, sub: typeof payload.sub === "string" ? payload.sub : identity, identity, email, groups };
}

/** `*` matches any run of characters; everything else literally. */
export function globMatch(pattern: string, s: string, caseInsensitive = false): boolean {
  const esc = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${esc}$`, caseInsensitive ? "i" : "").test(s);
}

function ruleMatches(rule: RuleConfig, who: Person): boolean {
  if (rule.provider !== undefined && rule.provider !== who.provider) return false;
  if (rule.subject !== undefined && rule.subject !== who.sub) return false;
  if (rule.email !== undefined && (who.email === null || !globMatch(rule.email, who.email, true))) return false;
  if (rule.group !== undefined && !who.groups.some((g) => globMatch(rule.group!, g))) return false;
  return true;
}

/** Every grant the rules give this person (one per matching rule). */
export function grantsFor(config: IdentityConfig, who: Person): Grant[] {
  return config.rules.filter((r) => ruleMatches(r, who)).map((r) => ({ role: r.role, fleets: r.fleets }));
}

/** The highest role the grants give in `fleet`, or null for none. */
export function roleInFleet(grants: readonly Grant[], fleet: string): Grant["role"] | null {
  let best: Grant["role"] | null = null;
  for (const g of grants) {
    const covers = g.fleets === "*" || g.fleets.some((p) => globMatch(p, fleet));
    if (covers && (best === null || RANK[g.role] > RANK[best])) best = g.role;
  }
  return best;
}
