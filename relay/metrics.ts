/**
 * The relay's metrics in the Prometheus text exposition format, through prom-client: ours, built
 * from the link's stats, the source's ROS message counts and the command outcomes observed on the
 * link, and beside them prom-client's process and Node.js metrics (CPU, memory, open file
 * descriptors, `nodejs_eventloop_lag_*`, GC, active handles), whose standard names the usual
 * Node.js dashboards expect. A relay whose event loop stalls (a wedged native call, a huge
 * outbox replay) shows it there before its link times out.
 *
 * Ours (all prefixed `dronefleet_relay_`; the names are a contract with existing dashboards):
 *   link_up                          gauge    1 between hello_ack and the socket closing
 *   reconnects_total                 counter  connection attempts after the first
 *   frames_sent_total                counter  telemetry_batch frames sent
 *   frames_released_total{release}   counter  frames by what released them (adaptive batching):
 *                                             idle (sent at once), ack, window, full (coalesced)
 *   updates_sent_total               counter  telemetry updates in those frames (re-sends count)
 *   outbox_depth                     gauge    drones held (memory) / records unacknowledged (disk)
 *   outbox_bytes                     gauge    bytes the disk outbox holds
 *   dropped_updates_total            counter  telemetry dropped because the outbox was full
 *   duplicates_at_edge_total         counter  updates the edge already had (batch_ack)
 *   rejected_by_edge_total           counter  updates the edge refused (batch_ack)
 *   stale_skipped_total              counter  stored updates not sent: the edge held newer
 *   pending_results                  gauge    command results not acknowledged by the edge
 *   dropped_results_total            counter
 *   commands_in_flight               gauge    commands executing now
 *   source_samples_total             counter  samples the source produced
 *   ros_messages_total{topic}        counter  ROS messages received, by topic kind (fix, battery…)
 *   silent_drones                    gauge    configured drones with no sample for longer than the stale time
 *   commands_total{command,status}   counter  commands executed here, by outcome
 *   command_latency_seconds{command} histogram  execute → result, at the relay
 *   last_ack_age_seconds             gauge    since the edge last acknowledged anything (-1: never)
 *   edge_refusal{reason}             gauge    1 while the edge refuses this relay for a configuration
 *                                             error (token_rejected, relay_id_taken); no series otherwise
 * The link's counters are read from its stats at scrape time (`collect`), so they never drift from
 * what `stats` log lines say.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { EdgeLink } from "./link/link";

export const COMMAND_LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

export interface MetricsSources {
  link: EdgeLink;
  /** ROS messages per topic kind; absent for the simulator. */
  rosMessages?: () => Readonly<Record<string, number>>;
  /** Samples produced by the source. */
  samples?: () => number;
  /** Configured drones silent for longer than the stale time (health.ts DroneWatch). */
  silentDrones?: () => number;
  now?: () => number;
  /** Process and Node.js metrics; default true (tests that build many registries may turn them off). */
  defaultMetrics?: boolean;
}

const P = "dronefleet_relay_";

type LinkStats = ReturnType<EdgeLink["stats"]>;

export class RelayMetrics {
  readonly registry = new Registry();
  private readonly commands: Counter<"command" | "status">;
  private readonly latency: Histogram<"command">;
  private readonly now: () => number;
  /** The link's stats for the scrape in progress (see render). */
  private scrapeStats: LinkStats | null = null;

  constructor(private readonly src: MetricsSources) {
    this.now = src.now ?? Date.now;
    const registers = [this.registry];
    // One stats read per scrape: prom-client collects metric by metric, so the first collector of
    // a scrape reads the link and the rest share it; render() starts each scrape afresh (a time-based
    // cache would serve a scrape the previous one's state).
    const stats = (): LinkStats => (this.scrapeStats ??= src.link.stats());
    const gauge = (name: string, help: string, value: () => number): void => {
      new Gauge({
        name: P + name,
        help,
        registers,
        collect() {
          this.set(value());
        },
      });
    };
    const counter = (name: string, help: string, value: () => number): void => {
      new Counter({
        name: P + name,
        help,
        registers,
        collect() {
          // A counter kept elsewhere: prom-client's counters only go up, so reset and add it whole.
          this.reset();
          this.inc(Math.max(0, value()));
        },
      });
    };
    gauge("link_up", "1 while the edge link is connected (after hello_ack).", () => (stats().connected ? 1 : 0));
    counter("reconnects_total", "Connection attempts after the first.", () => stats().reconnects);
    counter("frames_sent_total", "telemetry_batch frames sent.", () => stats().framesSent);
    counter("updates_sent_total", "Telemetry updates sent (re-sends count again).", () => stats().updatesSent);
    new Counter({
      name: `${P}frames_released_total`,
      help: "telemetry_batch frames by what released them: idle (sent at once), ack, window or full (coalesced while a frame was in flight).",
      labelNames: ["release"],
      registers,
      collect() {
        this.reset();
        for (const [release, n] of Object.entries(stats().framesReleased)) this.inc({ release }, Math.max(0, n));
      },
    });
    new Gauge({
      name: `${P}edge_refusal`,
      help: "1 while the edge refuses this relay for a configuration error (reason: token_rejected, relay_id_taken).",
      labelNames: ["reason"],
      registers,
      collect() {
        this.reset();
        const refused = stats().refused;
        if (refused) this.set({ reason: refused.reason }, 1);
      },
    });
    gauge("outbox_depth", "Drones held in memory, or records not yet acknowledged with the disk outbox.", () => stats().outboxDepth);
    gauge("outbox_bytes", "Bytes held by the disk outbox.", () => stats().outboxBytes);
    counter("dropped_updates_total", "Telemetry updates dropped because the outbox was full.", () => stats().droppedUpdates);
    counter("duplicates_at_edge_total", "Updates the edge already had (reported in batch_ack).", () => stats().duplicatesAtEdge);
    counter("rejected_by_edge_total", "Updates the edge rejected (reported in batch_ack).", () => stats().rejectedByEdge);
    counter("stale_skipped_total", "Stored updates not sent because the edge already held a newer seq.", () => stats().staleSkipped);
    gauge("pending_results", "Command results not yet acknowledged by the edge.", () => stats().pendingResults);
    counter("dropped_results_total", "Unacknowledged command results forgotten at the count bound.", () => stats().droppedResults);
    gauge("commands_in_flight", "Commands executing now.", () => stats().commandsInFlight);
    gauge("last_ack_age_seconds", "Seconds since the edge last acknowledged anything; -1 before the first ack.", () => {
      const at = stats().lastAckAt;
      return at === null ? -1 : Math.max(0, (this.now() - at) / 1000);
    });
    const samples = src.samples;
    if (samples) counter("source_samples_total", "Samples produced by the source.", samples);
    const ros = src.rosMessages;
    if (ros) {
      new Counter({
        name: `${P}ros_messages_total`,
        help: "ROS messages received, by topic kind.",
        labelNames: ["topic"],
        registers,
        collect() {
          this.reset();
          for (const [topic, n] of Object.entries(ros())) this.inc({ topic }, Math.max(0, n));
        },
      });
    }
    const silent = src.silentDrones;
    if (silent) gauge("silent_drones", "Configured drones with no sample for longer than the stale time (stale at the edge).", silent);
    this.commands = new Counter({
      name: `${P}commands_total`,
      help: "Commands executed at this relay, by command and outcome.",
      labelNames: ["command", "status"],
      registers,
    });
    this.latency = new Histogram({
      name: `${P}command_latency_seconds`,
      help: "Time from receiving a command to its result, at the relay.",
      labelNames: ["command"],
      buckets: [...COMMAND_LATENCY_BUCKETS],
      registers,
    });
    if (src.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    src.link.on("command", (c) => this.observeCommand(c.command, c.status, c.seconds));
  }

  observeCommand(command: string, status: string, seconds: number): void {
    this.commands.inc({ command, status });
    this.latency.observe({ command }, seconds);
  }

  /** The Content-Type of `render()`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text; ends with a newline as the format requires. */
  async render(): Promise<string> {
    this.scrapeStats = null;
    const text = await this.registry.metrics();
    return text.endsWith("\n") ? text : text + "\n";
  }
}
