/**
 * The bindings the fleet object reads. The Worker's Env (edge/worker/env.ts) extends this, so the
 * fleet layer never imports the worker layer.
 */
import type { Directory } from "../postgres/directory";

export interface FleetEnv {
  /** The fleet registry the analytics tick pings (edge/postgres/directory.ts). */
  DIRECTORY: DurableObjectNamespace<Directory>;
  /** Postgres connection string (Neon in production, local Postgres in development). */
  DATABASE_URL?: string;
  /** "host:port" of a local WebSocket→TCP proxy; only for local Postgres. */
  NEON_WS_PROXY?: string;
  /** Most open dashboard sockets per token subject in one fleet (default 256, edge/fleet/limits.ts). */
  MAX_DASHBOARD_SOCKETS_PER_TOKEN?: string;
  /** Most open relay sockets per token subject in one fleet (default 16, edge/fleet/limits.ts). */
  MAX_RELAY_SOCKETS_PER_TOKEN?: string;
  /** New drones one relay token subject may add per minute after a burst of 5,000 (default 1,000). */
  MAX_NEW_DRONES_PER_MINUTE?: string;
}
