/**
 * The rows a fleet's outbox carries to Postgres: one body type per kind, and the telemetry snapshot
 * row. Pure types and constants shared by the fleet object (which queues them), the Postgres drain
 * and writer (which store them) and the tests and benchmark (which make them).
 */
import type { AlertView, CoordinationEventView, LiveAnalytics } from "../protocol";

/** One telemetry snapshot per drone per this many ms (slots aligned to the epoch). */
export const SNAPSHOT_INTERVAL_MS = 10_000;

export type MissionBody = {
  mission_id: string;
  drone_id: string;
  command_id: string;
  status: string;
  priority: string;
  waypoint_count: number;
  created_at: number;
  assigned_at: number | null;
  started_at: number | null;
  completed_at: number | null;
  message: string | null;
  updated_at: number;
};
export type CoordinationBody = CoordinationEventView & { updated_at: number };
export type AlertBody = AlertView & { updated_at: number };
export type AuditBody = {
  command_id: string;
  command: string;
  drone_id: string | null;
  sub: string;
  role: string;
  status: string;
  code: string | null;
  message: string | null;
  /** The command's parameters, JSON text. */
  params: string;
  relay_id: string | null;
  received_at: number;
  sent_at: number | null;
  finished_at: number | null;
};
/** A performance_metrics row: the live metrics without the fleet (the row's key) and ISO time. */
export type MetricsBody = Omit<LiveAnalytics, "fleet" | "timestamp">;
export type ChargingBody = {
  drone_id: string;
  start_time: number;
  end_time: number;
  start_battery: number;
  end_battery: number;
};

/** Kind → body; the kind names are also the outbox's `kind` column. */
export type OutboxBodies = {
  mission: MissionBody;
  coordination_event: CoordinationBody;
  alert: AlertBody;
  command_audit: AuditBody;
  performance_metrics: MetricsBody;
  charging_session: ChargingBody;
};
export type OutboxKind = keyof OutboxBodies;
export const OUTBOX_KINDS: readonly OutboxKind[] = ["mission", "coordination_event", "alert", "command_audit", "performance_metrics", "charging_session"];

export type OutboxItem = { [K in OutboxKind]: { id: number; kind: K; key: string; body: OutboxBodies[K] } }[OutboxKind];

export type SnapshotRow = {
  id: number;
  drone_id: string;
  /** Start of the 10 s slot, ms. */
  snapshot_time: number;
  lat: number;
  lon: number;
  alt_m: number;
  battery_pct: number;
  speed_mps: number;
  status: string;
  armed: boolean;
  distance_m: number;
};

/** What one flush transaction carries. */
export type OutboxBatch = { items: OutboxItem[]; snapshots: SnapshotRow[] };

