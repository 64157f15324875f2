/**
 * An edge double for relay tests that behaves like the fleet object where it matters for
 * delivery: a real `ws` server on a loopback port that answers relay_hello with hello_ack and the
 * highest seq it holds per drone, accepts a telemetry update only when its seq is above that
 * drone's last (latest-wins, like the edge; older or equal ones are counted as duplicates), acks
 * every batch and, unless told not to, every command_result. `accepted` is what dashboards would
 * have been sent: each sample at most once, in order per drone. Frames are read with the
 * protocol's R→E parser, so anything the fleet object would refuse lands in `invalid` instead.
 *
 * `stop()` is an outage (every socket terminated, the port closed); `start({ port })` brings the
 * same edge back on the same port, keeping its state, as the fleet object keeps its storage.
 * `holdAcks` keeps batch_acks back until `releaseAcks()` (a frame "in flight" for as long as a test
 * wants); a relay_id in `takenRelayIds` is refused as the fleet object refuses a relay_id bound to
 * another token subject: an `error relay_id_taken` frame, then close 4003.
 */
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { CLOSE_CODES, parseRelayMessage, TelemetrySample, type CommandResult, type EdgeToRelay, type MissionProgress, type RelayHello, type RelayMessage } from "../../edge/protocol";

export type Update = TelemetrySample;

export class DedupEdge {
  server: WebSocketServer | null = null;
  port = 0;
  readonly lastSeq = new Map<string, number>();
  /** Updates applied, in arrival order. */
  readonly accepted: Update[] = [];
  duplicates = 0;
  batches = 0;
  readonly results: CommandResult[] = [];
  readonly progress: MissionProgress[] = [];
  readonly hellos: RelayHello[] = [];
  /** Frames the protocol's R→E parser refused, and telemetry items the sample schema refused. */
  readonly invalid: string[] = [];
  ackResults = true;
  /** false: apply batches but never send batch_ack (acks lost on the way back). */
  ackBatches = true;
  /** true: apply batches but keep their batch_acks until `releaseAcks()`. */
  holdAcks = false;
  private heldAcks: { ws: WebSocket; ack: string }[] = [];
  /** relay_ids bound to another token subject: their hello is refused with close 4003. */
  readonly takenRelayIds = new Set<string>();
  /** Close codes this edge closed relay sockets with. */
  readonly closedWith: number[] = [];
  private waiters: { cond: () => boolean; resolve: () => void }[] = [];

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get sockets(): WebSocket[] {
    return this.server ? [...this.server.clients] : [];
  }

  async start(port = this.port): Promise<this> {
    const server = new WebSocketServer({ port, host: "127.0.0.1" });
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    server.on("connection", (ws) =>
      ws.on("message", (data) => {
        // Parsed as the fleet object parses it: a frame the edge would refuse is recorded, not applied.
        const parsed = parseRelayMessage(String(data));
        if (parsed.ok) this.onFrame(ws, parsed.value);
        else this.invalid.push(parsed.error.message);
      }),
    );
    return this;
  }

  /** An outage: drop every connection and stop listening. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const c of server.clients) c.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Send the batch_acks held back so far, in order; returns how many. */
  releaseAcks(): number {
    const held = this.heldAcks.splice(0);
    for (const h of held) h.ws.send(h.ack);
    return held.length;
  }

  /** Send a frame to every connected relay. */
  send(frame: EdgeToRelay): void {
    for (const ws of this.sockets) ws.send(JSON.stringify(frame));
  }

  /** Resolves once `cond()` holds after some frame, or rejects after `timeoutMs`. */
  until(cond: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = {
        cond,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (accepted ${this.accepted.length}, duplicates ${this.duplicates})`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  private onFrame(ws: WebSocket, f: RelayMessage): void {
    switch (f.type) {
      case "relay_hello":
        this.hellos.push(f);
        if (this.takenRelayIds.has(f.relay_id)) {
          // As edge/fleet/ingest.ts does: say why, then close; nothing of this relay is applied.
          ws.send(JSON.stringify({ type: "error", code: "relay_id_taken", message: `relay_id ${f.relay_id} belongs to another token subject; an admin can release it` }));
          ws.close(CLOSE_CODES.relayIdTaken, "relay_id belongs to another token subject");
          this.closedWith.push(CLOSE_CODES.relayIdTaken);
          break;
        }
        ws.send(JSON.stringify({ type: "hello_ack", fleet: "f1", last_seq: Object.fromEntries(this.lastSeq) }));
        break;
      case "telemetry_batch": {
        this.batches++;
        let accepted = 0;
        let duplicates = 0;
        let rejected = 0;
        for (const item of f.updates) {
          const r = TelemetrySample.safeParse(item);
          if (!r.success) {
            rejected++;
            this.invalid.push(r.error.message);
            continue;
          }
          const u = r.data;
          if ((this.lastSeq.get(u.drone_id) ?? -1) >= u.seq) {
            duplicates++;
            continue;
          }
          this.lastSeq.set(u.drone_id, u.seq);
          this.accepted.push(u);
          accepted++;
        }
        this.duplicates += duplicates;
        const ack = JSON.stringify({ type: "batch_ack", batch_id: f.batch_id, accepted, duplicates, rejected, errors: [] });
        if (this.holdAcks) this.heldAcks.push({ ws, ack });
        else if (this.ackBatches) ws.send(ack);
        break;
      }
      case "command_result":
        this.results.push(f);
        if (this.ackResults) ws.send(JSON.stringify({ type: "command_result_ack", command_id: f.command_id }));
        break;
      case "mission_progress":
        this.progress.push(f);
        break;
      default:
        break;
    }
    for (const w of [...this.waiters]) {
      if (w.cond()) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve();
      }
    }
  }
}
