/**
 * The relay's local health endpoint: a small node:http server, loopback by default, for the
 * ground station's monitoring (systemd watchdog scripts, a Prometheus scraper on the site LAN).
 *
 *   GET /healthz  200 when the edge link is up, or has been down for less than `graceMs` (a
 *                 short WAN blip or the first connection after start is not an alarm); 503
 *                 otherwise. JSON body: status ok|degraded|down, link_up, down_for_s, outbox…
 *   GET /metrics  Prometheus text format (see metrics.ts).
 *
 * Anything else: 404 (405 for another method on a known path). No authentication: bind it to
 * loopback or a management network only; it exposes counts, never tokens or positions.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { EdgeLink } from "./link/link";
import { silentLogger, type Logger } from "./log";
import type { RelayMetrics } from "./metrics";

export interface HealthServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** How long a down link still reports 200 ("degraded"). */
  graceMs: number;
  link: EdgeLink;
  metrics: RelayMetrics;
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
    const status = s.connected ? "ok" : downFor < this.graceMs ? "degraded" : "down";
    return {
      status,
      link_up: s.connected,
      down_for_s: round(downFor / 1000),
      grace_s: round(this.graceMs / 1000),
      last_ack_age_s: s.lastAckAt === null ? null : round(Math.max(0, t - s.lastAckAt) / 1000),
      reconnects: s.reconnects,
      outbox_depth: s.outboxDepth,
      outbox_bytes: s.outboxBytes,
      pending_results: s.pendingResults,
      dropped_updates: s.droppedUpdates,
      uptime_s: round((t - this.startedAt) / 1000),
    };
  }
}

const round = (x: number): number => Math.round(x * 10) / 10;

/** Start listening; resolves once bound (rejects on EADDRINUSE and the like). */
export function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const log = opts.log ?? silentLogger;
  const health = new LinkHealth(opts.link, opts.graceMs, opts.now);
  const server: Server = createServer((req, res) => {
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
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : opts.metrics.render());
      }
    } catch (err) {
      log.error("health endpoint failed", { path, error: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end("internal error\n");
    }
  });
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
