import type { FleetEnv } from "../fleet/env";
import type { FleetHub } from "../fleet/fleet-hub";

/** Bindings and variables of the edge Worker (wrangler.toml, .dev.vars, secrets): what the fleet
 * object reads (FleetEnv: DIRECTORY, DATABASE_URL, NEON_WS_PROXY, MAX_DASHBOARD_SOCKETS_PER_TOKEN)
 * and what only the Worker reads. */
export interface Env extends FleetEnv {
  FLEET_HUB: DurableObjectNamespace<FleetHub>;
  /** HS256 signing secret for access tokens (wrangler secret in production). */
  AUTH_SECRET: string;
  /** Comma-separated browser origins allowed to open dashboard sockets, or "*" (edge/worker/limits.ts). */
  ALLOWED_ORIGINS?: string;
  /**
   * "development" (wrangler dev, tests), "staging" or "production". Anything but "development",
   * including unset, gets the production checks (edge/worker/deployment.ts): a real AUTH_SECRET
   * and named ALLOWED_ORIGINS.
   */
  ENVIRONMENT?: string;
  /**
   * Sign-in through the operators' identity provider (Cloudflare Access or OIDC) and the mapping of
   * their groups to roles and fleets: JSON text, or a table in wrangler.toml (edge/worker/sso-config.ts).
   * Unset: HS256 tokens only.
   */
  IDENTITY_CONFIG?: string | Record<string, unknown>;
}
