/**
 * The relay's metrics in the Prometheus text exposition format (version 0.0.4), built from the
 * link's stats, the source's ROS message counts and command outcomes observed on the link.
 * No client library: a handful of counters and one histogram do not need one.
 *
 * Names (all prefixed `dronefleet_relay_`):
 *   link_up                          gauge    1 between hello_ack and the socket closing
 *   reconnects_total                 counter  connection attempts after the first
 *   frames_sent_total                counter  telemetry_batch frames sent
 *   updates_sent_total               counter  telemetry updates in those frames (re-sends count)
 *   outbox_depth                     gauge    drones held (memory) / records unacknowledged (disk)
 *   outbox_bytes                     gauge    bytes the disk outbox holds
 *   dropped_updates_total            counter  telemetry dropped because the outbox was full
 *   duplicates_at_edge_total         counter  updates the edge already had (batch_ack)
 *   rejected_by_edge_total           counter  updates the edge refused (batch_ack)
 *   stale_skipped_total              counter  stored updates not sent: the edge held newer
 *   pending_results                  gauge    command results not acknowledged by the edge
 *   dropped_results_total            counter
 *   source_samples_total             counter  samples the source produced
 *   ros_messages_total{topic}        counter  ROS messages received, by topic kind (fix, battery…)
 *   commands_total{command,status}   counter  commands executed here, by outcome
 *   command_latency_seconds{command} histogram  execute → result, at the relay
 *   last_ack_age_seconds             gauge    since the edge last acknowledged anything (-1: never)
 */
import type { EdgeLink } from "./link/link";

export const COMMAND_LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

type Histogram = { buckets: number[]; sum: number; count: number };

export interface MetricsSources {
  link: EdgeLink;
  /** ROS messages per topic kind; absent for the simulator. */
  rosMessages?: () => Readonly<Record<string, number>>;
  /** Samples produced by the source. */
  samples?: () => number;
  now?: () => number;
}

const P = "dronefleet_relay_";

export class RelayMetrics {
  private readonly commands = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();
  private readonly now: () => number;

  constructor(private readonly src: MetricsSources) {
    this.now = src.now ?? Date.now;
    src.link.on("command", (c) => this.observeCommand(c.command, c.status, c.seconds));
  }

  observeCommand(command: string, status: string, seconds: number): void {
    const key = `${command}\u0000${status}`;
    this.commands.set(key, (this.commands.get(key) ?? 0) + 1);
    let h = this.latency.get(command);
    if (!h) {
      h = { buckets: COMMAND_LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.latency.set(command, h);
    }
    COMMAND_LATENCY_BUCKETS.forEach((le, i) => {
      if (seconds <= le && h) h.buckets[i] = (h.buckets[i] ?? 0) + 1;
    });
    h.sum += seconds;
    h.count++;
  }

  /** The exposition text; ends with a newline as the format requires. */
  render(): string {
    const s = this.src.link.stats();
    const out: string[] = [];
    const metric = (name: string, type: "counter" | "gauge" | "histogram", help: string, samples: [string, number][]): void => {
      out.push(`# HELP ${P}${name} ${help}`, `# TYPE ${P}${name} ${type}`);
      for (const [labels, v] of samples) out.push(`${P}${name}${labels} ${formatNumber(v)}`);
    };
    metric("link_up", "gauge", "1 while the edge link is connected (after hello_ack).", [["", s.connected ? 1 : 0]]);
    metric("reconnects_total", "counter", "Connection attempts after the first.", [["", s.reconnects]]);
    metric("frames_sent_total", "counter", "telemetry_batch frames sent.", [["", s.framesSent]]);
    metric("updates_sent_total", "counter", "Telemetry updates sent (re-sends count again).", [["", s.updatesSent]]);
    metric("outbox_depth", "gauge", "Drones held in memory, or records not yet acknowledged with the disk outbox.", [["", s.outboxDepth]]);
    metric("outbox_bytes", "gauge", "Bytes held by the disk outbox.", [["", s.outboxBytes]]);
    metric("dropped_updates_total", "counter", "Telemetry updates dropped because the outbox was full.", [["", s.droppedUpdates]]);
    metric("duplicates_at_edge_total", "counter", "Updates the edge already had (reported in batch_ack).", [["", s.duplicatesAtEdge]]);
    metric("rejected_by_edge_total", "counter", "Updates the edge rejected (reported in batch_ack).", [["", s.rejectedByEdge]]);
    metric("stale_skipped_total", "counter", "Stored updates not sent because the edge already held a newer seq.", [["", s.staleSkipped]]);
    metric("pending_results", "gauge", "Command results not yet acknowledged by the edge.", [["", s.pendingResults]]);
    metric("dropped_results_total", "counter", "Unacknowledged command results forgotten at the count bound.", [["", s.droppedResults]]);
    metric("commands_in_flight", "gauge", "Commands executing now.", [["", s.commandsInFlight]]);
    const ackAge = s.lastAckAt === null ? -1 : Math.max(0, (this.now() - s.lastAckAt) / 1000);
    metric("last_ack_age_seconds", "gauge", "Seconds since the edge last acknowledged anything; -1 before the first ack.", [["", ackAge]]);
    if (this.src.samples) metric("source_samples_total", "counter", "Samples produced by the source.", [["", this.src.samples()]]);
    const ros = this.src.rosMessages?.();
    if (ros) {
      metric(
        "ros_messages_total",
        "counter",
        "ROS messages received, by topic kind.",
        Object.entries(ros).map(([topic, n]) => [labels({ topic }), n]),
      );
    }
    metric(
      "commands_total",
      "counter",
      "Commands executed at this relay, by command and outcome.",
      [...this.commands].map(([key, n]) => {
        const [command = "", status = ""] = key.split("\u0000");
        return [labels({ command, status }), n];
      }),
    );
    out.push(`# HELP ${P}command_latency_seconds Time from receiving a command to its result, at the relay.`);
    out.push(`# TYPE ${P}command_latency_seconds histogram`);
    for (const [command, h] of this.latency) {
      COMMAND_LATENCY_BUCKETS.forEach((le, i) => {
        out.push(`${P}command_latency_seconds_bucket${labels({ command, le: String(le) })} ${h.buckets[i] ?? 0}`);
      });
      out.push(`${P}command_latency_seconds_bucket${labels({ command, le: "+Inf" })} ${h.count}`);
      out.push(`${P}command_latency_seconds_sum${labels({ command })} ${formatNumber(h.sum)}`);
      out.push(`${P}command_latency_seconds_count${labels({ command })} ${h.count}`);
    }
    return out.join("\n") + "\n";
  }
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`);
  return `{${parts.join(",")}}`;
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return Number.isInteger(v) ? String(v) : String(Math.round(v * 1e6) / 1e6);
}
