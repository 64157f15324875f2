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
}
