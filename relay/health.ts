/**
 * The relay's local health endpoint: a small node:http server, loopback by default, for the
 * ground station's monitoring (systemd watchdog scripts, a Prometheus scraper on the site LAN).
 *
 *   GET /healthz  200 when the edge link is up, or has been down for less than `graceMs` (a
 *                 short WAN blip or the first connection after start is not an alarm); 503
 *                 otherwise, and at once, grace or not, while the edge refuses the relay for a
 *                 configuration error (`problem`: token_rejected, relay_id_taken, with what to
 *                 do), which waiting does not fix. JSON body: status ok|degraded|down, problem,
 *                 link_up, down_for_s, outbox…, silent_drones. `degraded` also while a configured drone has sent no sample (no
 *                 new position) for longer than the edge's stale time: the link is fine, but
 *                 dashboards show that drone stale (`DroneWatch`, which also logs it, once).
 *   GET /metrics  Prometheus text format (see metrics.ts).
 *
 * Anything else: 404 (405 for another method on a known path). No authentication: bind it to
 * loopback or a management network only; it exposes counts, never tokens or positions.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { LIMITS } from "../edge/protocol";
import type { EdgeLink } from "./link/link";
import { silentLogger, type Logger } from "./log";
import type { RelayMetrics } from "./metrics";

/** A configured drone counts as silent after this long without a sample: the edge's stale bound. */
export const SILENT_AFTER_MS = LIMITS.staleAfterMs;
/** Most drone ids a /healthz body or one log line lists. */
const LIST_MAX = 20;

export interface DroneWatchOptions {
  /** The drones this relay is configured for. */
  droneIds: () => readonly string[];
  silentAfterMs?: number;
  now?: () => number;
  log?: Logger;
  /** More about a silent drone for its log line (the ROS source: seconds since each topic). */
  describe?: (droneId: string) => Record<string, unknown>;
}

/**
 * Which configured drones have produced no sample for longer than the stale time. A sample is a
 * new position, so this covers a drone that sends nothing at all (its node is down, ROS_DOMAIN_ID
 * differs, QoS does not match) and one whose GPS froze while its other topics still arrive. Each
 * drone is logged once when it falls silent (one line for all that fall silent together) and once
 * when heard from again.
 */
export class DroneWatch {
  private readonly lastAt = new Map<string, number>();
  private readonly silent = new Set<string>();
  private readonly startedAt: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly after: number;

  constructor(private readonly o: DroneWatchOptions) {
    this.now = o.now ?? Date.now;
    this.log = o.log ?? silentLogger;
    this.after = o.silentAfterMs ?? SILENT_AFTER_MS;
    this.startedAt = this.now();
  }

  /** A sample from this drone went to the link. */
  saw(droneId: string): void {
    const t = this.now();
    const prev = this.lastAt.get(droneId);
    this.lastAt.set(droneId, t);
    if (this.silent.delete(droneId)) {
      this.log.info("drone heard from again", { drone_id: droneId, silent_s: round((t - (prev ?? this.startedAt)) / 1000) });
    }
  }

  /** Re-evaluate (call it periodically); logs drones that just fell silent. Returns the silent ids. */
  check(): string[] {
    const t = this.now();
    const fresh: string[] = [];
    for (const id of this.o.droneIds()) {
      if (this.silent.has(id)) continue;
      if (t - (this.lastAt.get(id) ?? this.startedAt) > this.after) {
        this.silent.add(id);
        fresh.push(id);
      }
    }
    if (fresh.length > 0) {
      const drones = fresh.slice(0, LIST_MAX).map((id) => {
        const last = this.lastAt.get(id);
        return { drone_id: id, ...(last === undefined ? { never_heard: true } : { silent_s: round((t - last) / 1000) }), ...this.o.describe?.(id) };
      });
      this.log.warn("drones silent: no position for longer than the stale time, so the edge shows them stale", {
        count: fresh.length,
        stale_after_s: round(this.after / 1000),
        drones,
        check: "npm run relay -- doctor (publishers, QoS and message rates per topic)",
      });
    }
    return this.silentIds();
  }

  silentIds(): string[] {
    return [...this.silent].sort();
  }
}

export interface HealthServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** How long a down link still reports 200 ("degraded"). */
  graceMs: number;
  link: EdgeLink;
  metrics: RelayMetrics;
  /** Configured drones' silence; without it /healthz reports on the link only. */
  watch?: DroneWatch;
  log?: Logger;
  now?: () => number;
}

export interface HealthServer {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

export type HealthStatus = {
  status: "ok" | "degraded" | "down";
  /** Why the edge refuses this relay, when it is a configuration error (see LinkStats.refused); else null. */
  problem: { code: "token_rejected" | "relay_id_taken"; message: string; since_s: number } | null;
  link_up: boolean;
  /** Seconds since the link went down (or since start, if it never came up); 0 when up. */
  down_for_s: number;
  grace_s: number;
  last_ack_age_s: number | null;
  reconnects: number;
  outbox_depth: number;
  outbox_bytes: number;
  pending_results: number;
  dropped_updates: number;
  /** Configured drones with no sample for longer than the stale time, and (up to 20 of) their ids. */
  silent_drones: number;
  silent: string[];
  uptime_s: number;
};

/** Tracks when the link went down, to apply the grace period. */
export class LinkHealth {
  private downSince: number;
  private readonly startedAt: number;

  constructor(
    private readonly link: EdgeLink,
    private readonly graceMs: number,
    private readonly now: () => number = Date.now,
    private readonly watch?: DroneWatch,
  ) {
    this.startedAt = this.downSince = now();
    link.on("connected", () => {
      this.downSince = Number.NaN;
    });
    link.on("disconnected", () => {
      this.downSince = this.now();
    });
  }

  status(): HealthStatus {
    const s = this.link.stats();
    const t = this.now();
    const downFor = s.connected || Number.isNaN(this.downSince) ? 0 : Math.max(0, t - this.downSince);
    const silent = this.watch?.check() ?? [];
    const refused = s.connected ? null : s.refused;
    const status = s.connected ? (silent.length > 0 ? "degraded" : "ok") : refused === null && downFor < this.graceMs ? "degraded" : "down";
    return {
      status,
      problem: refused && { code: refused.reason, message: refused.message, since_s: round(Math.max(0, t - refused.since) / 1000) },
      link_up: s.connected,
      down_for_s: round(downFor / 1000),
      grace_s: round(this.graceMs / 1000),
      last_ack_age_s: s.lastAckAt === null ? null : round(Math.max(0, t - s.lastAckAt) / 1000),
      reconnects: s.reconnects,
      outbox_depth: s.outboxDepth,
      outbox_bytes: s.outboxBytes,
      pending_results: s.pendingResults,
      dropped_updates: s.droppedUpdates,
      silent_drones: silent.length,
      silent: silent.slice(0, LIST_MAX),
      uptime_s: round((t - this.startedAt) / 1000),
    };
  }
}

const round = (x: number): number => Math.round(x * 10) / 10;

/** Start listening; resolves once bound (rejects on EADDRINUSE and the like). */
export function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const log = opts.log ?? silentLogger;
  const health = new LinkHealth(opts.link, opts.graceMs, opts.now, opts.watch);
  const server: Server = createServer((req, res) => {
    void respond(req, res);
  });
  const respond = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?", 1)[0];
    const known = path === "/healthz" || path === "/metrics";
    if (!known) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found: try /healthz or /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("method not allowed\n");
      return;
    }
    try {
      if (path === "/healthz") {
        const body = health.status();
        res.writeHead(body.status === "down" ? 503 : 200, { "content-type": "application/json", "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : JSON.stringify(body) + "\n");
      } else {
        const text = await opts.metrics.render();
        res.writeHead(200, { "content-type": opts.metrics.contentType, "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : text);
      }
    } catch (err) {
      log.error("health endpoint failed", { path, error: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end("internal error\n");
    }
  };
  // Scrapers keep connections alive; do not let them hold the process open at shutdown.
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen(opts.port, opts.host, () => {
      server.off("error", onError);
      server.on("error", (err) => log.error("health server error", { error: err.message }));
      const addr = server.address() as AddressInfo;
      log.info("health endpoint listening", { url: `http://${addr.address.includes(":") ? `[${addr.address}]` : addr.address}:${addr.port}/healthz` });
      resolve({
        port: addr.port,
        host: addr.address,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
