import type { Directory } from "../postgres/directory";
import type { FleetHub } from "../fleet/fleet-hub";

/** Bindings and variables of the edge Worker (wrangler.toml, .dev.vars, secrets). */
export interface Env {
  FLEET_HUB: DurableObjectNamespace<FleetHub>;
  /** The fleet registry the cron triggers read (one object, idFromName("directory")). */
  DIRECTORY: DurableObjectNamespace<Directory>;
  /** HS256 signing secret for access tokens (wrangler secret in production). */
  AUTH_SECRET: string;
  /** Postgres connection string (Neon in production, local Postgres in development). */
  DATABASE_URL?: string;
  /** "host:port" of a local WebSocket→TCP proxy; only for local Postgres. */
  NEON_WS_PROXY?: string;
  /** Comma-separated browser origins allowed to open dashboard sockets, or "*" (edge/worker/limits.ts). */
  ALLOWED_ORIGINS?: string;
  /** Most open dashboard sockets per token subject in one fleet (default 256, edge/worker/limits.ts). */
  MAX_DASHBOARD_SOCKETS_PER_TOKEN?: string;
}

/** Identity the Worker has verified, passed to the fleet object in internal headers. */
export const IDENTITY_HEADERS = { fleet: "x-df-fleet", sub: "x-df-sub", role: "x-df-role" } as const;
