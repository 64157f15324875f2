/**
 * Verification of identity-provider tokens (Cloudflare Access application tokens, OIDC ID or
 * access tokens) with jose against the provider's published keys.
 *
 * Checked: the signature with a key from the provider's JWKS picked by the header's `kid` (a
 * token without one is refused), `alg` against the provider's list (before any key is looked up,
 * so HS256 or "none" can never be tried against a public key), `iss`, `aud`, `exp` and `nbf` with
 * the configured leeway.
 *
 * Keys: one jose RemoteJWKSet per JWKS URL, kept for the isolate's life. It fetches on first use
 * and again once the keys are older than `jwks.cache_max_age_s`; a `kid` it does not know makes it
 * fetch again (a rotated key) at most once per `jwks.cooldown_s`. Failing closed: when the keys
 * are stale or the `kid` is unknown and the fetch fails (down, timeout, not 200, not a JWKS), the
 * token is refused (503 — the provider, not the person, is the problem); a fresh cached key that
 * matches keeps verifying through a JWKS outage. jose's resolver does not share an in-flight fetch
 * between requests on Workers (a request may not wait on another's I/O), so concurrent cold
 * requests each fetch once.
 */
import { createRemoteJWKSet, type RemoteJWKSet } from "jose/jwks/remote";
import { jwtVerify } from "jose/jwt/verify";
import { decodeJwt } from "jose/jwt/decode";
import { decodeProtectedHeader } from "jose/decode/protected_header";
import { log } from "../domain/log";
import type { IdentityConfig, ProviderConfig } from "./sso-config";

export type SsoFailure = { ok: false; status: 401 | 503; code: "unauthorized" | "idp_unavailable"; message: string };
export type SsoResult = { ok: true; provider: ProviderConfig; payload: Record<string, unknown> } | SsoFailure;

const keySets = new Map<string, RemoteJWKSet>();

function keySet(p: ProviderConfig, c: IdentityConfig): RemoteJWKSet {
  const key = `${p.jwksUrl} ${c.jwks.cacheMaxAgeMs} ${c.jwks.cooldownMs} ${c.jwks.timeoutMs}`;
  let ks = keySets.get(key);
  if (!ks) {
    ks = createRemoteJWKSet(new URL(p.jwksUrl), {
      cacheMaxAge: c.jwks.cacheMaxAgeMs,
      cooldownDuration: c.jwks.cooldownMs,
      timeoutDuration: c.jwks.timeoutMs,
    });
    // A handful of providers per deployment; bounded so that config churn cannot grow it.
    if (keySets.size >= 32) keySets.clear();
    keySets.set(key, ks);
  }
  return ks;
}

const unauthorized = (message: string): SsoFailure => ({ ok: false, status: 401, code: "unauthorized", message });

/** Does this compact JWT name one of the configured issuers (unverified: only to pick a provider)? */
export function providerFor(config: IdentityConfig, token: string): ProviderConfig | "malformed" | null {
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    return "malformed";
  }
  return config.providers.find((p) => p.issuer === iss) ?? null;
}

/** Verify a provider token. Never throws. */
export async function verifySsoToken(config: IdentityConfig, token: string): Promise<SsoResult> {
  const provider = providerFor(config, token);
  if (provider === "malformed") return unauthorized("malformed token");
  if (!provider) return unauthorized("token issuer is not a configured identity provider (IDENTITY_CONFIG providers)");
  let kid: unknown;
  let alg: unknown;
  try {
    ({ kid, alg } = decodeProtectedHeader(token));
  } catch {
    return unauthorized("malformed token");
  }
  if (typeof kid !== "string" || kid === "") return unauthorized("token has no kid: cannot pick the provider's key");
  try {
    const { payload } = await jwtVerify(token, keySet(provider, config), {
      issuer: provider.issuer,
      audience: provider.audience,
      algorithms: provider.algorithms,
      clockTolerance: config.clockToleranceS,
      requiredClaims: ["exp"],
    });
    return { ok: true, provider, payload: payload as Record<string, unknown> };
  } catch (err) {
    return failure(err, provider, String(alg), kid);
  }
}

function failure(err: unknown, p: ProviderConfig, alg: string, kid: string): SsoFailure {
  const code = typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : "";
  const claim = typeof err === "object" && err !== null && "claim" in err ? String((err as { claim: unknown }).claim) : "";
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return unauthorized("token expired");
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      if (claim === "aud") return unauthorized(`token audience is not this edge's (provider ${p.name})`);
      if (claim === "iss") return unauthorized(`token issuer does not match provider ${p.name}`);
      if (claim === "nbf") return unauthorized("token not yet valid");
      return unauthorized(`token claim ${claim || "set"} invalid`);
    case "ERR_JOSE_ALG_NOT_ALLOWED":
    case "ERR_JOSE_NOT_SUPPORTED":
      return unauthorized(`token algorithm ${alg} is not accepted for provider ${p.name} (${p.algorithms.join(", ")})`);
    case "ERR_JWKS_NO_MATCHING_KEY":
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return unauthorized(`no ${alg} key with kid ${kid.slice(0, 80)} in provider ${p.name}'s key set`);
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return unauthorized("bad token signature");
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
    case "ERR_JWK_INVALID":
      return unauthorized("malformed token");
    default:
      // The keys could not be had: fetch failed or timed out (TypeError, ERR_JWKS_TIMEOUT), the
      // answer was not 200 or not JSON (ERR_JOSE_GENERIC), or not a key set (ERR_JWKS_INVALID).
      log("warn", "identity provider keys unavailable; refusing its tokens", { provider: p.name, jwks_url: p.jwksUrl }, err);
      return {
        ok: false,
        status: 503,
        code: "idp_unavailable",
        message: `cannot fetch the signing keys of identity provider ${p.name}; try again shortly`,
      };
  }
}
