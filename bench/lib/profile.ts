/**
 * The fleet object's own account of a measured window: `GET /v1/fleets/:fleet/profile` (admin
 * token; edge/fleet/profile.ts), read with `?reset=1` when a window starts (to zero the counters)
 * and again when it ends (the window's figures). From it each point gets its stall (the longest
 * single turn: how long the object kept every socket waiting) and where the busy time went, per
 * component. A 404 (a stack without the route) or any failure gives null and a note: the bench
 * carries on and the report shows "–".
 */
import { PROFILE_TIMEOUT_MS } from "./stats";

/** The route's contract: what the bench reads of it. */
export interface ProfileView {
  window_ms: number;
  turns: number;
  busy_ms: number;
  longest_turn_ms: number;
  longest_turn_kind: string | null;
  components: Record<string, { ms: number; count: number }>;
  /** The longest turn's own time per component (absent on an older edge). */
  longest_turn_components?: Record<string, number>;
}

/** One window as the report shows it. */
export interface FleetProfile {
  window_ms: number;
  turns: number;
  busy_ms: number;
  /** busy_ms / window_ms, in % of one core. */
  busy_pct: number;
  longest_turn_ms: number;
  longest_turn_kind: string | null;
  /** What the longest turn spent its time on, largest first (ms). */
  longest_turn_top: { name: string; ms: number }[];
  /** Components by time, largest first: ms per second of window and share of the busy time. */
  top: { name: string; ms_per_s: number; pct_of_busy: number; count: number }[];
}

export function summariseProfile(v: ProfileView): FleetProfile {
  const s = Math.max(v.window_ms, 1) / 1000;
  const top = Object.entries(v.components ?? {})
    .map(([name, c]) => ({ name, ms_per_s: c.ms / s, pct_of_busy: v.busy_ms > 0 ? (100 * c.ms) / v.busy_ms : 0, count: c.count }))
    .filter((c) => c.ms_per_s > 0)
    .sort((a, b) => b.ms_per_s - a.ms_per_s);
  return {
    window_ms: v.window_ms,
    turns: v.turns,
    busy_ms: v.busy_ms,
    busy_pct: (100 * v.busy_ms) / Math.max(v.window_ms, 1),
    longest_turn_ms: v.longest_turn_ms,
    longest_turn_kind: v.longest_turn_kind,
    longest_turn_top: Object.entries(v.longest_turn_components ?? {})
      .map(([name, ms]) => ({ name, ms }))
      .filter((c) => c.ms > 0)
      .sort((a, b) => b.ms - a.ms),
    top,
  };
}

function isView(x: unknown): x is ProfileView {
  const v = x as ProfileView;
  return typeof v === "object" && v !== null && typeof v.window_ms === "number" && typeof v.busy_ms === "number" && typeof v.longest_turn_ms === "number";
}

/** Reads one edge's profile route; remembers why the last read gave nothing. */
export class ProfileReader {
  /** Why the last read gave no figures (e.g. "HTTP 404: no profile route"); null after a good read. */
  note: string | null = null;

  constructor(
    private readonly edgeUrl: string,
    private readonly adminToken: string,
  ) {}

  /** Read the counters and zero them (`?reset=1`). Null on any failure; see `note`. */
  async take(fleet: string): Promise<ProfileView | null> {
    try {
      const res = await fetch(`${this.edgeUrl}/v1/fleets/${encodeURIComponent(fleet)}/profile?reset=1`, {
        headers: { authorization: `Bearer ${this.adminToken}` },
        signal: AbortSignal.timeout(PROFILE_TIMEOUT_MS),
      });
      if (!res.ok) {
        await res.body?.cancel();
        this.note = res.status === 404 ? "HTTP 404: the edge has no profile route" : `HTTP ${res.status}`;
        return null;
      }
      const body = (await res.json()) as unknown;
      if (!isView(body)) {
        this.note = "the profile route answered an unexpected shape";
        return null;
      }
      this.note = null;
      return body;
    } catch (err) {
      this.note = (err as Error).message.slice(0, 120);
      return null;
    }
  }
}
