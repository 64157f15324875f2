/**
 * Dashboard clients for the chaos run: real WebSockets to the edge that reconnect (fixed, bounded
 * delay) and subscribe to every drone again, recording what the invariants need:
 * - per drone: the last seq seen, every step backwards (a violation) and every repeat (the edge
 *   sends the current state on each subscribe: a repeat is expected right after one);
 * - per drone: the 10 s slots in which fresh telemetry arrived (for the Postgres snapshot check);
 * - every command answer, command_status, alert, mission_update and coordination_event.
 * The operator client also sends commands and re-sends the unanswered ones after a reconnect, with
 * the same command_id, as a real client retrying must.
 */
import WebSocket from "ws";
import { SNAPSHOT_INTERVAL_MS } from "../edge/domain/outbox-rows";

export type Frame = { type: string; [k: string]: unknown };
type Sample = { drone_id: string; seq: number; lat: number; lon: number; alt_m: number; status: string; battery_pct: number };

/** Telemetry within this long of a (re)subscribe is not attributed to a snapshot slot: it may be
 * the current state the edge replays, ingested earlier. */
const REPLAY_GRACE_MS = 2_000;
/** A frame counts for its slot only this long after the slot began: the edge stamped the snapshot
 * with its own clock a little earlier than we received the frame. */
const SLOT_MARGIN_MS = 1_000;

export interface DashboardStats {
  name: string;
  connects: number;
  closes: { code: number; reason: string; at: number }[];
  telemetry: number;
  /** First examples of steps backwards; `backwardsTotal` counts them all. */
  backwards: { drone: string; seq: number; prev: number; at: number }[];
  backwardsTotal: number;
  repeats: number;
  /** Repeats not explained by a subscribe just before. */
  repeatsUnexplained: number;
}

export class ChaosDashboard {
  ws: WebSocket | null = null;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private subscribedAt = 0;
  readonly lastSeq = new Map<string, number>();
  /** Receive time of the latest fresh telemetry per drone. */
  readonly lastFreshAt = new Map<string, number>();
  readonly latest = new Map<string, Sample>();
  readonly slots = new Map<string, Set<number>>();
  readonly answers: { at: number; frame: Frame }[] = [];
  readonly statuses: Frame[] = [];
  readonly alerts: Frame[] = [];
  readonly coordination = new Set<string>();
  readonly errors: Frame[] = [];
  readonly stats: DashboardStats;
  onOpen: (() => void) | null = null;
  /** Called for each fresh telemetry sample (drone, receive time). */
  onFresh: ((drone: string, at: number) => void) | null = null;

  constructor(
    readonly name: string,
    private readonly url: string,
    private readonly token: string,
    private readonly batch: boolean,
    private readonly tokenInQuery = false,
  ) {
    this.stats = { name, connects: 0, closes: [], telemetry: 0, backwards: [], backwardsTotal: 0, repeats: 0, repeatsUnexplained: 0 };
  }

  start(): void {
    this.connect();
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  private connect(): void {
    if (this.stopped) return;
    const ws = this.tokenInQuery
      ? new WebSocket(`${this.url}?access_token=${encodeURIComponent(this.token)}`, { handshakeTimeout: 5_000, perMessageDeflate: false })
      : new WebSocket(this.url, { headers: { authorization: `Bearer ${this.token}` }, handshakeTimeout: 5_000, perMessageDeflate: false });
    this.ws = ws;
    ws.on("open", () => {
      this.stats.connects++;
      this.subscribedAt = Date.now();
      ws.send(JSON.stringify({ type: "subscribe_telemetry", drone_ids: "all", batch: this.batch }));
      this.onOpen?.();
    });
    ws.on("message", (data, binary) => {
      if (binary) return;
      let f: Frame;
      try {
        f = JSON.parse(data.toString()) as Frame;
      } catch {
        return;
      }
      // Flow control (edge/fleet/flow.ts): a dashboard that never answers is treated as not reading.
      if (f.type === "flow") {
        ws.send(JSON.stringify({ type: "flow_ack", seq: (f as { seq?: unknown }).seq }));
        return;
      }
      this.onFrame(f, Date.now());
    });
    ws.on("unexpected-response", (_req, res) => {
      res.resume();
      ws.terminate();
    });
    ws.on("error", () => {
      // 'close' follows and schedules the reconnect.
    });
    ws.on("close", (code, reason) => {
      if (this.ws === ws) this.ws = null;
      this.stats.closes.push({ code, reason: reason.toString().slice(0, 80), at: Date.now() });
      if (this.stats.closes.length > 200) this.stats.closes.shift();
      if (!this.stopped) this.reconnectTimer = setTimeout(() => this.connect(), 500);
    });
  }

  private onFrame(f: Frame, at: number): void {
    switch (f.type) {
      case "telemetry":
        this.onSample(f as unknown as Sample, at);
        return;
      case "telemetry_batch":
        for (const u of f.updates as Sample[]) this.onSample(u, at);
        return;
      case "command_status":
        this.statuses.push(f);
        return;
      case "alert":
        this.alerts.push(f);
        return;
      case "alerts":
        // Many changes of one tick in one frame: kept as the single frames they stand for.
        for (const alert of f.raised as unknown[]) this.alerts.push({ type: "alert", state: "raised", alert });
        for (const alert of f.cleared as unknown[]) this.alerts.push({ type: "alert", state: "cleared", alert });
        return;
      case "coordination_event": {
        const ev = f.event as { event_id?: string } | undefined;
        if (ev?.event_id) this.coordination.add(ev.event_id);
        return;
      }
      case "error":
        if (this.errors.length < 100) this.errors.push(f);
        return;
      default:
        if (f.type.endsWith("_response")) this.answers.push({ at, frame: f });
    }
  }

  private onSample(s: Sample, at: number): void {
    this.stats.telemetry++;
    const prev = this.lastSeq.get(s.drone_id);
    if (prev !== undefined && s.seq < prev) {
      this.stats.backwardsTotal++;
      if (this.stats.backwards.length < 50) this.stats.backwards.push({ drone: s.drone_id, seq: s.seq, prev, at });
      return;
    }
    if (prev !== undefined && s.seq === prev) {
      this.stats.repeats++;
      if (at - this.subscribedAt > REPLAY_GRACE_MS) this.stats.repeatsUnexplained++;
      return;
    }
    this.lastSeq.set(s.drone_id, s.seq);
    this.latest.set(s.drone_id, s);
    this.lastFreshAt.set(s.drone_id, at);
    this.onFresh?.(s.drone_id, at);
    if (at - this.subscribedAt > REPLAY_GRACE_MS && at % SNAPSHOT_INTERVAL_MS >= SLOT_MARGIN_MS) {
      const slot = Math.floor(at / SNAPSHOT_INTERVAL_MS) * SNAPSHOT_INTERVAL_MS;
      let set = this.slots.get(s.drone_id);
      if (!set) this.slots.set(s.drone_id, (set = new Set()));
      set.add(slot);
    }
  }

  send(msg: unknown): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  stop(): void {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.ws?.terminate();
    this.ws = null;
  }
}

export type SentCommand = {
  command_id: string;
  type: "modify_waypoint" | "emergency_land" | "assign_mission";
  drone_id: string | null;
  firstSentAt: number;
  sends: number;
  /** Deliberate repeats of an answered command (a client retrying after a lost answer). */
  repeats: number;
};

/** Command traffic from one operator dashboard: a seeded mix near the drones' positions. */
export class Operator {
  readonly sent = new Map<string, SentCommand>();
  private timer: NodeJS.Timeout | null = null;
  private n = 0;

  constructor(
    readonly dash: ChaosDashboard,
    private readonly random: () => number,
    private readonly runId: string,
  ) {
    // After a reconnect, every command without a final answer is sent again, same command_id.
    dash.onOpen = () => {
      for (const c of this.unanswered()) this.resend(c);
    };
  }

  /** Commands sent whose final answer has not arrived at this dashboard. */
  unanswered(): SentCommand[] {
    const answered = new Set(this.dash.answers.filter((a) => a.frame.status !== "sent" && a.frame.status !== "received").map((a) => String(a.frame.command_id)));
    return [...this.sent.values()].filter((c) => !answered.has(c.command_id));
  }

  start(intervalMs: number): void {
    const tick = () => {
      this.once();
      this.timer = setTimeout(tick, intervalMs * (0.5 + this.random()));
    };
    this.timer = setTimeout(tick, intervalMs);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private msgs = new Map<string, unknown>();

  private resend(c: SentCommand): void {
    const msg = this.msgs.get(c.command_id);
    if (msg && this.dash.send(msg)) c.sends++;
  }

  /** One command: 80 % modify_waypoint, 10 % emergency_land, 5 % assign_mission, 5 % a repeat. */
  once(): void {
    if (!this.dash.open) return;
    const drones = [...this.dash.latest.values()];
    if (drones.length === 0) return;
    const r = this.random();
    if (r < 0.05 && this.sent.size > 0) {
      const all = [...this.sent.values()];
      const c = all[Math.floor(this.random() * all.length)]!;
      const msg = this.msgs.get(c.command_id);
      if (msg && this.dash.send(msg)) {
        c.sends++;
        c.repeats++;
      }
      return;
    }
    const d = drones[Math.floor(this.random() * drones.length)]!;
    const id = `chaos-${this.runId}-${(this.n++).toString().padStart(5, "0")}`;
    let msg: Record<string, unknown>;
    let type: SentCommand["type"];
    if (r < 0.15) {
      type = "emergency_land";
      msg = { type, command_id: id, drone_id: d.drone_id, reason: "chaos run" };
    } else if (r < 0.2) {
      type = "assign_mission";
      const a = near(d, 120 + this.random() * 200, this.random());
      const b = near(d, 120 + this.random() * 200, this.random());
      msg = { type, command_id: id, mission: { waypoints: [a, b], priority: "normal" } };
    } else {
      type = "modify_waypoint";
      msg = { type, command_id: id, drone_id: d.drone_id, new_waypoint: near(d, 40 + this.random() * 120, this.random()), modification_reason: "chaos run" };
    }
    if (!this.dash.send(msg)) return;
    this.msgs.set(id, msg);
    this.sent.set(id, { command_id: id, type, drone_id: type === "assign_mission" ? null : d.drone_id, firstSentAt: Date.now(), sends: 1, repeats: 0 });
  }
}

/** A point `distM` from the drone in a seeded direction, at 30–60 m. */
function near(d: { lat: number; lon: number }, distM: number, u: number): { lat: number; lon: number; alt_m: number } {
  const bearing = u * 2 * Math.PI;
  const dn = Math.cos(bearing) * distM;
  const de = Math.sin(bearing) * distM;
  const lat = d.lat + dn / 111_320;
  const lon = d.lon + de / (111_320 * Math.cos((d.lat * Math.PI) / 180));
  return { lat: Math.round(lat * 1e7) / 1e7, lon: Math.round(lon * 1e7) / 1e7, alt_m: 30 + Math.round(u * 30) };
}
