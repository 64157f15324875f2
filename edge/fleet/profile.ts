/**
 * Where the fleet object's time goes: the length of every turn it runs (a socket frame, an alarm,
 * an RPC call) and the time inside it per component, so a benchmark or an operator can name the
 * cause of a stall instead of guessing. Read through the admin route GET /v1/fleets/:fleet/profile
 * (routes/fleets.ts) and `npm run bench` (bench/run.ts reads it per point).
 *
 * Time is exclusive: a component entered inside another stops the outer one's clock, so the
 * components of a window add up to its busy time. It costs two `performance.now()` calls per
 * span. In local workerd the clock advances during execution; on Cloudflare it only advances on
 * I/O (a Spectre mitigation), so deployed figures read near zero: profile locally.
 *
 * Imports nothing; every module of edge/fleet may use it.
 */

export const PROFILE_COMPONENTS = [
  /** JSON.parse and the protocol's envelope parse of a frame. */
  "parse",
  /** Per-item validation of telemetry (zod, ranges, ownership). */
  "validate",
  /** Merging samples into the live state, tracks and intents. */
  "live_state",
  /** SQLite writes of the live state. */
  "persistence",
  /** Conflict detection passes (and the resolutions they have time for). */
  "detection",
  /** Resolution turns: the conflicts a pass had no time for (collision-avoidance.ts `resume`). */
  "resolution",
  /** Analytics hooks, snapshots and the outbox. */
  "analytics",
  /** JSON.stringify of telemetry frames for dashboards. */
  "fanout_serialise",
  /** WebSocket sends and their flow accounting. */
  "sends",
  /** fleet_status and link broadcasts. */
  "status",
  /** Commands: a dashboard's (checks, safety, ledger), their results and mission progress from relays. */
  "commands",
  /** Everything else inside a turn. */
  "other",
] as const;
export type ProfileComponent = (typeof PROFILE_COMPONENTS)[number];
export type TurnKind = "relay_frame" | "dashboard_frame" | "alarm" | "rpc" | "timer";

export type ProfileView = {
  /** Milliseconds since the counters were last reset. */
  window_ms: number;
  turns: number;
  /** Time spent inside turns. */
  busy_ms: number;
  /** The longest single turn: the longest the object kept every socket waiting. */
  longest_turn_ms: number;
  longest_turn_kind: TurnKind | null;
  /** Per turn kind: count, total and longest. */
  kinds: Record<TurnKind, { count: number; ms: number; max_ms: number }>;
  /** Exclusive time per component; `count`: spans entered. */
  components: Record<ProfileComponent, { ms: number; count: number }>;
  /** The longest turn's own time per component (those above 0), so a stall names its cause. */
  longest_turn_components: Partial<Record<ProfileComponent, number>>;
};

const INDEX = new Map<ProfileComponent, number>(PROFILE_COMPONENTS.map((c, i) => [c, i]));
const OTHER = INDEX.get("other")!;

const clock = (): number => performance.now();

export class Profiler {
  private since = clock();
  private turns = 0;
  private busy = 0;
  private longest = 0;
  private longestKind: TurnKind | null = null;
  private readonly kinds = new Map<TurnKind, { count: number; ms: number; max_ms: number }>();
  private readonly ms = new Float64Array(PROFILE_COMPONENTS.length);
  private readonly counts = new Float64Array(PROFILE_COMPONENTS.length);
  /** `ms` when the current turn began, and the longest turn's own breakdown. */
  private readonly atTurnStart = new Float64Array(PROFILE_COMPONENTS.length);
  private longestBreakdown = new Float64Array(PROFILE_COMPONENTS.length);
  /** The component (index) the clock runs for now, and since when; -1 outside a turn. */
  private current = -1;
  private mark = 0;
  private depth = 0;
  private turnStart = 0;

  /** Run one turn of the object (an entry point). Nested calls count in the outer turn. */
  turn<T>(kind: TurnKind, fn: () => T): T {
    if (this.depth > 0) return fn();
    this.depth = 1;
    this.turnStart = this.mark = clock();
    this.current = OTHER;
    this.atTurnStart.set(this.ms);
    try {
      return fn();
    } finally {
      const end = clock();
      this.credit(end);
      this.current = -1;
      this.depth = 0;
      const took = end - this.turnStart;
      this.turns++;
      this.busy += took;
      if (took > this.longest) {
        this.longest = took;
        this.longestKind = kind;
        for (let i = 0; i < this.ms.length; i++) this.longestBreakdown[i] = this.ms[i]! - this.atTurnStart[i]!;
      }
      let k = this.kinds.get(kind);
      if (!k) this.kinds.set(kind, (k = { count: 0, ms: 0, max_ms: 0 }));
      k.count++;
      k.ms += took;
      if (took > k.max_ms) k.max_ms = took;
    }
  }

  /** Run `fn` as `component` (exclusive of the components it enters itself). */
  span<T>(component: ProfileComponent, fn: () => T): T {
    if (this.current < 0) return fn();
    const prev = this.current;
    this.credit(clock());
    const c = INDEX.get(component)!;
    this.current = c;
    this.counts[c]!++;
    try {
      return fn();
    } finally {
      this.credit(clock());
      this.current = prev;
    }
  }

  /** The counters since the last reset; `reset` starts a new window after reading. */
  view(reset = false): ProfileView {
    const now = clock();
    const components = {} as ProfileView["components"];
    const longestTurn: ProfileView["longest_turn_components"] = {};
    PROFILE_COMPONENTS.forEach((c, i) => {
      components[c] = { ms: round(this.ms[i]!), count: this.counts[i]! };
      if (this.longestBreakdown[i]! > 0) longestTurn[c] = round(this.longestBreakdown[i]!);
    });
    const kinds = {} as ProfileView["kinds"];
    for (const k of ["relay_frame", "dashboard_frame", "alarm", "rpc", "timer"] as const) {
      const v = this.kinds.get(k) ?? { count: 0, ms: 0, max_ms: 0 };
      kinds[k] = { count: v.count, ms: round(v.ms), max_ms: round(v.max_ms) };
    }
    const out: ProfileView = {
      window_ms: round(now - this.since),
      turns: this.turns,
      busy_ms: round(this.busy),
      longest_turn_ms: round(this.longest),
      longest_turn_kind: this.longestKind,
      kinds,
      components,
      longest_turn_components: longestTurn,
    };
    if (reset) {
      this.since = now;
      this.turns = 0;
      this.busy = 0;
      this.longest = 0;
      this.longestKind = null;
      this.kinds.clear();
      this.ms.fill(0);
      this.counts.fill(0);
      this.longestBreakdown.fill(0);
    }
    return out;
  }

  private credit(at: number): void {
    if (this.current < 0) return;
    this.ms[this.current]! += at - this.mark;
    this.mark = at;
  }
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

export type Spans = Pick<Profiler, "span">;
