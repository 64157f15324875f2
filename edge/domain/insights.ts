/**
 * Automated insights: rules over one fleet-hour's aggregates and trends that write sentences an
 * operator can act on ("failed missions up 40 % on yesterday (7 vs 5)", "drone_7 charges twice as
 * long as the fleet median (…)"). Pure: data in, insights out, in a stable order.
 */

/** A metric of hourly_analytics that trend_analysis follows, and which direction is bad news. */
export type TrendMetric = {
  metric: string;
  label: string;
  unit: "count" | "min" | "ms" | "pct" | "ratio";
  /** Which change deserves an insight (null: none, the metric is context only). */
  bad: "up" | "down" | null;
  /** Smallest absolute change worth a sentence (counts: 2 failed missions vs 1 is noise). */
  minAbs: number;
};

export const TREND_METRICS: readonly TrendMetric[] = [
  { metric: "missions_completed", label: "missions finished", unit: "count", bad: null, minAbs: 0 },
  { metric: "successful_missions", label: "successful missions", unit: "count", bad: "down", minAbs: 2 },
  { metric: "failed_missions", label: "failed missions", unit: "count", bad: "up", minAbs: 2 },
  { metric: "avg_duration_minutes", label: "average mission duration", unit: "min", bad: "up", minAbs: 1 },
  { metric: "charging_sessions", label: "charging sessions", unit: "count", bad: null, minAbs: 0 },
  { metric: "avg_charge_gained", label: "average charge gained per session", unit: "pct", bad: "down", minAbs: 5 },
  { metric: "avg_charging_time_minutes", label: "average charging time", unit: "min", bad: "up", minAbs: 2 },
  { metric: "coordination_events", label: "coordination events", unit: "count", bad: "up", minAbs: 2 },
  { metric: "avg_resolution_time_ms", label: "average coordination resolution time", unit: "ms", bad: "up", minAbs: 250 },
  { metric: "fleet_utilization_percentage", label: "fleet utilization", unit: "pct", bad: "down", minAbs: 5 },
  { metric: "data_completeness", label: "telemetry completeness", unit: "ratio", bad: "down", minAbs: 0.05 },
  { metric: "alerts_raised", label: "alerts raised", unit: "count", bad: "up", minAbs: 2 },
  { metric: "commands_failed", label: "failed commands", unit: "count", bad: "up", minAbs: 2 },
];

/** A change of at least this many percent in the bad direction makes a trend insight. */
export const TREND_THRESHOLD_PCT = 25;
/** A drone whose average charging time is at least this multiple of the fleet median is flagged. */
export const SLOW_CHARGE_RATIO = 1.75;
export const COMPLETENESS_FLOOR = 0.9;
/** The seed's target for collision coordination. */
export const RESOLUTION_TARGET_MS = 3_000;
export const SUCCESS_RATE_FLOOR = 0.8;

export type TrendInput = {
  metric: string;
  value: number | null;
  previous_hour_value: number | null;
  yesterday_value: number | null;
};
export type HourInput = {
  missions_completed: number;
  successful_missions: number;
  snapshots_received: number;
  snapshots_expected: number;
  data_completeness: number | null;
  coordination: Record<string, { count: number; avg_resolution_ms: number | null }>;
};
export type ChargerInput = { drone_id: string; sessions: number; avg_minutes: number };

export type InsightOut = {
  rule: string;
  /** A drone id, an event type, or "" for the whole fleet. */
  subject: string;
  severity: "info" | "warning" | "critical";
  message: string;
  data: Record<string, unknown>;
};

export type InsightInput = {
  hour: HourInput;
  trends: readonly TrendInput[];
  /** Per-drone charging over the last 24 h up to the hour's end, and the median session length. */
  chargers: readonly ChargerInput[];
  medianChargeMinutes: number | null;
};

export function generateInsights(input: InsightInput): InsightOut[] {
  const out: InsightOut[] = [];
  const trends = new Map(input.trends.map((t) => [t.metric, t]));
  for (const m of TREND_METRICS) {
    const t = trends.get(m.metric);
    if (t && m.bad) {
      const i = trendInsight(m, t);
      if (i) out.push(i);
    }
  }

  const h = input.hour;
  if (h.missions_completed >= 5 && h.successful_missions / h.missions_completed < SUCCESS_RATE_FLOOR) {
    const rate = h.successful_missions / h.missions_completed;
    out.push({
      rule: "low_success_rate",
      subject: "",
      severity: rate < 0.5 ? "critical" : "warning",
      message: `only ${pct(rate * 100)} % of missions succeeded (${h.successful_missions} of ${h.missions_completed}): read the failed missions' messages in the command audit`,
      data: { rate, successful: h.successful_missions, finished: h.missions_completed },
    });
  }

  if (h.data_completeness !== null && h.snapshots_expected > 0 && h.data_completeness < COMPLETENESS_FLOOR) {
    out.push({
      rule: "low_completeness",
      subject: "",
      severity: h.data_completeness < 0.5 ? "critical" : "warning",
      message: `only ${pct(h.data_completeness * 100)} % of expected telemetry snapshots arrived (${fmtInt(h.snapshots_received)} of ${fmtInt(h.snapshots_expected)}): check the relay link and the drones that went silent`,
      data: { completeness: h.data_completeness, received: h.snapshots_received, expected: h.snapshots_expected },
    });
  }

  for (const [type, s] of Object.entries(h.coordination).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (s.avg_resolution_ms !== null && s.avg_resolution_ms > RESOLUTION_TARGET_MS) {
      out.push({
        rule: "slow_resolution",
        subject: type,
        severity: "warning",
        message: `${type} events took ${(s.avg_resolution_ms / 1000).toFixed(1)} s on average to resolve (${s.count} event${s.count === 1 ? "" : "s"}), above the ${RESOLUTION_TARGET_MS / 1000} s target: review the separation minima and hold times`,
        data: { avg_resolution_ms: s.avg_resolution_ms, count: s.count },
      });
    }
  }

  const median = input.medianChargeMinutes;
  if (median !== null && median > 0 && input.chargers.length >= 3) {
    for (const c of [...input.chargers].sort((a, b) => (a.drone_id < b.drone_id ? -1 : 1))) {
      const ratio = c.avg_minutes / median;
      if (ratio < SLOW_CHARGE_RATIO) continue;
      out.push({
        rule: "slow_charger",
        subject: c.drone_id,
        severity: ratio >= 3 ? "critical" : "warning",
        message: `${c.drone_id} charges ${times(ratio)} as long as the fleet median (${mins(c.avg_minutes)} vs ${mins(median)} over the last 24 h, ${c.sessions} session${c.sessions === 1 ? "" : "s"}): check its battery health and charger`,
        data: { avg_minutes: c.avg_minutes, median_minutes: median, ratio, sessions: c.sessions },
      });
    }
  }
  return out;
}

/** One sentence for a metric that moved the wrong way, against yesterday if known, else the previous hour. */
function trendInsight(m: TrendMetric, t: TrendInput): InsightOut | null {
  if (t.value === null) return null;
  const base = t.yesterday_value !== null ? { v: t.yesterday_value, on: "yesterday", what: "the same hour yesterday" } : t.previous_hour_value !== null ? { v: t.previous_hour_value, on: "the previous hour", what: "the previous hour" } : null;
  if (!base) return null;
  const diff = t.value - base.v;
  const worse = m.bad === "up" ? diff : -diff;
  if (worse < m.minAbs || worse <= 0) return null;
  const data = { metric: m.metric, value: t.value, baseline: base.v, compared_with: base.on };
  if (base.v === 0) {
    // No percentage against zero: say it plainly.
    return { rule: `trend_${m.metric}`, subject: "", severity: "warning", message: `${m.label}: ${show(m, t.value)}, against none in ${base.what}`, data };
  }
  const change = (diff / Math.abs(base.v)) * 100;
  if (Math.abs(change) < TREND_THRESHOLD_PCT) return null;
  return {
    rule: `trend_${m.metric}`,
    subject: "",
    severity: Math.abs(change) >= 100 ? "critical" : "warning",
    message: `${m.label} ${diff > 0 ? "up" : "down"} ${pct(Math.abs(change))} % on ${base.on} (${show(m, t.value)} vs ${show(m, base.v)})`,
    data: { ...data, change_pct: change },
  };
}

function show(m: TrendMetric, v: number): string {
  switch (m.unit) {
    case "count":
      return fmtInt(v);
    case "min":
      return mins(v);
    case "ms":
      return `${(v / 1000).toFixed(1)} s`;
    case "pct":
      return `${v.toFixed(1)} %`;
    case "ratio":
      return `${pct(v * 100)} %`;
  }
}

const pct = (x: number) => String(Math.round(x));
const fmtInt = (x: number) => Math.round(x).toLocaleString("en-US");
const mins = (x: number) => `${x < 10 ? x.toFixed(1) : Math.round(x)} min`;

/** "twice", "three times", or "2.6 times". */
export function times(ratio: number): string {
  if (Math.abs(ratio - 2) < 0.25) return "twice";
  if (Math.abs(ratio - 3) < 0.25) return "three times";
  return `${ratio.toFixed(1)} times`;
}
