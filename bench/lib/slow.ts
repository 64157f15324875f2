/**
 * The slow-dashboard case of `npm run bench`: one dashboard that subscribes and then never reads
 * (its TCP socket paused, so neither the kernel's buffer nor any `flow_ack` moves), while the
 * others stream as usual. What it measures besides the others' latency (phases.ts): the server's
 * RSS over the time (is what it holds for the non-reader bounded?), and, once the bench reads the
 * socket again at the end, what the edge did about it: its `lagging` notice (whose `ts` says when
 * the edge saw it fall behind) and a close with 4002 (too slow), or nothing.
 */
import type WebSocket from "ws";
import { CLOSE_CODES } from "../../edge/protocol";
import { closeQuietly, openSocket, waitFor } from "./loadgen";
import type { ProcMeter } from "./proc";
import { sleep } from "./stats";

export type RssSeries = { start: number | null; max: number | null; end: number | null; samples: number };

export interface SlowResult {
  /** Seconds the socket was not read (from the pause until the bench read it again). */
  unread_s: number;
  /** RSS over that time, MB: the workerd runtime (fleet objects) and wrangler's proxy workerd. */
  rss_mb: { server: RssSeries; extra: RssSeries | null };
  /** Seconds after the pause at which the edge declared it lagging (its `lagging` frame's ts), or null. */
  lagging_after_s: number | null;
  /** The close the bench read once it read the socket again, or null if it was still open. */
  closed: { code: number; reason: string; too_slow: boolean } | null;
  /** The edge's own close time for a lagging socket (`close_after_ms` of its notice) after the pause, s. */
  close_due_after_s: number | null;
  /** What it read after resuming. */
  frames_after_resume: number;
  bytes_after_resume: number;
}

/** Samples the RSS of the server's processes once a second. */
export class RssSampler {
  private timer: NodeJS.Timeout | null = null;
  private readonly server: number[] = [];
  private readonly extra: number[] = [];

  constructor(
    private readonly s: ProcMeter,
    private readonly e: ProcMeter | undefined,
  ) {}

  private take(): void {
    const a = this.s.rssNow();
    if (a !== null) this.server.push(a);
    const b = this.e?.rssNow() ?? null;
    if (b !== null) this.extra.push(b);
  }

  start(): void {
    this.take();
    this.timer = setInterval(() => this.take(), 1000);
  }

  /** Stop (idempotent) and summarise. */
  stop(): { server: RssSeries; extra: RssSeries | null } {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
      this.take();
    }
    const sum = (v: number[]): RssSeries => ({ start: v[0] ?? null, max: v.length ? Math.max(...v) : null, end: v.at(-1) ?? null, samples: v.length });
    return { server: sum(this.server), extra: this.e ? sum(this.extra) : null };
  }
}

/** A dashboard that subscribes to every drone and then stops reading. */
export class SlowDashboard {
  private ws: WebSocket | null = null;
  /** Date.now() of the pause (the edge's clock is the same machine's). */
  pausedAt = 0;

  constructor(
    private readonly url: string,
    private readonly batch: boolean,
  ) {}

  async open(timeoutMs = 10_000): Promise<void> {
    const ws = await openSocket(this.url, timeoutMs);
    this.ws = ws;
    ws.on("error", () => {});
    const ok = waitFor(ws, (m) => m.type === "subscribed", timeoutMs, "subscribed");
    ws.send(JSON.stringify({ type: "subscribe_telemetry", request_id: "sub", drone_ids: "all", ...(this.batch ? { batch: true } : {}) }));
    await ok;
    // From here on nothing is read: no frame reaches `ws`, no flow_ack goes back. `pause()` pauses
    // the TCP socket (ws._socket) and tells ws's receiver not to resume it when it drains.
    ws.pause();
    this.pausedAt = Date.now();
  }

  /**
   * Read again (no flow_ack is ever sent, so the edge keeps counting it as behind) and wait up to
   * `waitMs` for its close; report what came.
   */
  async finish(rss: SlowResult["rss_mb"], waitMs: number): Promise<SlowResult> {
    const ws = this.ws!;
    const resumedAt = Date.now();
    let frames = 0;
    let bytes = 0;
    let laggingTs: number | null = null;
    let closeAfter: number | null = null;
    let closed: SlowResult["closed"] = null;
    const gone = new Promise<void>((resolve) => {
      ws.on("close", (code: number, reason: Buffer) => {
        closed = { code, reason: reason.toString().slice(0, 200), too_slow: code === CLOSE_CODES.tooSlow };
        resolve();
      });
    });
    ws.on("message", (data: Buffer) => {
      frames++;
      bytes += data.length;
      if (laggingTs === null && data.length < 512 && data.toString().startsWith('{"type":"lagging"')) {
        try {
          const m = JSON.parse(data.toString()) as { state?: string; ts?: number; close_after_ms?: number };
          if (m.state === "lagging" && typeof m.ts === "number") {
            laggingTs = m.ts;
            closeAfter = typeof m.close_after_ms === "number" ? m.close_after_ms : null;
          }
        } catch {
          // not a lagging notice after all
        }
      }
    });
    ws.resume();
    await Promise.race([gone, sleep(waitMs)]);
    const lt = laggingTs as number | null;
    const ca = closeAfter as number | null;
    return {
      unread_s: (resumedAt - this.pausedAt) / 1000,
      rss_mb: rss,
      lagging_after_s: lt === null ? null : (lt - this.pausedAt) / 1000,
      closed,
      close_due_after_s: lt === null || ca === null ? null : (lt + ca - this.pausedAt) / 1000,
      frames_after_resume: frames,
      bytes_after_resume: bytes,
    };
  }

  close(): void {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    if (ws.isPaused) ws.resume();
    closeQuietly(ws);
  }
}
