/**
 * The seed's design (../shared/seed.md, FleetWebSocketServer), minimal but faithful, as the
 * baseline for `npm run bench`:
 *
 * - one Node `ws` server; relays send the same `telemetry_batch` frames as to our edge;
 * - Redis through ioredis, as the seed: `new Redis()`, and its `duplicate()` for the subscriber;
 * - every update is `PUBLISH telemetry:<drone>` (JSON per message) and `HSET telemetry:<drone>`
 *   (latest state, as the seed's analytics reads it) on Redis;
 * - a second Redis connection `PSUBSCRIBE telemetry:* mission:* coordination:* analytics:*`
 *   parses every message and sends it to each subscribed dashboard as its own `telemetry` frame
 *   (no batching to dashboards), and a 5 s `fleet_status` by setInterval, as in the seed.
 *
 * Deviations, each in the baseline's favour or needed to measure it: the telemetry frame is
 * serialised once per message rather than once per client; `subscribe_telemetry` is answered
 * with `subscribed` (so the client knows when to start counting); `batch_ack` is sent when Redis
 * has answered the batch's commands (as our edge acks after its write); a relay frame's commands
 * go to Redis in one pipeline; no auth.
 *
 * Usage: node --import tsx bench/baseline/server.ts [--port 0] [--redis 127.0.0.1:6379] [--db 9]
 * Prints `LISTENING <port>` on stdout when ready. SIGTERM: deletes its keys, closes, exits.
 */
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { WebSocketServer, WebSocket } from "ws";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    redis: { type: "string", default: "127.0.0.1:6379" },
    db: { type: "string", default: "9" },
  },
});
const [redisHost, redisPortStr] = values.redis!.split(":");
const redisPort = Number(redisPortStr ?? 6379);
const db = Number(values.db!);

type Client = { socket: WebSocket; subscriptions: Set<string> | "all" | null; lastHeartbeat: number };
const clients = new Map<number, Client>();
let nextClientId = 1;
const knownDrones = new Set<string>();
let subscriberDisconnects = 0;
let shuttingDown = false;

/** What the server needs of Redis: a pipelined writer and a pattern subscriber. */
interface Bus {
  /** Send the commands (lower-case names, as ioredis wants them) in one write; resolves when Redis has answered them all. */
  pipeline(cmds: string[][]): Promise<unknown>;
  del(keys: string[]): Promise<unknown>;
  close(): void;
}

/** ioredis, as the seed uses it: `new Redis()`, a `duplicate()` for `psubscribe` and `pmessage`. */
async function ioredisBus(onMessage: (channel: string, message: string) => void): Promise<Bus> {
  const pub = new Redis({ host: redisHost!, port: redisPort, db, lazyConnect: true, maxRetriesPerRequest: 1 });
  pub.on("error", (err: Error) => process.stderr.write(`baseline: redis: ${err.message}\n`));
  await pub.connect();
  const sub = pub.duplicate();
  sub.on("error", (err: Error) => process.stderr.write(`baseline: redis subscriber: ${err.message}\n`));
  // ioredis reconnects and re-subscribes on its own; updates published meanwhile are lost.
  sub.on("reconnecting", () => {
    if (!shuttingDown) subscriberDisconnects++;
  });
  sub.on("pmessage", (_pattern: string, channel: string, message: string) => onMessage(channel, message));
  await sub.psubscribe("telemetry:*", "mission:*", "coordination:*", "analytics:*");
  return {
    pipeline: (cmds) => pub.pipeline(cmds).exec(),
    del: (keys) => pub.del(...keys),
    close: () => {
      pub.disconnect();
      sub.disconnect();
    },
  };
}

const onRedisMessage = (channel: string, message: string): void => {
  const data = JSON.parse(message) as Record<string, unknown>;
  broadcastToSubscribedClients(channel, data);
};
const bus = await ioredisBus(onRedisMessage);

function broadcastToSubscribedClients(channel: string, data: Record<string, unknown>): void {
  if (!channel.startsWith("telemetry:")) return;
  const drone = channel.slice("telemetry:".length);
  const frame = JSON.stringify({ type: "telemetry", ...data });
  for (const c of clients.values()) {
    const s = c.subscriptions;
    if (s === null) continue;
    if (s === "all" || s.has(drone)) {
      if (c.socket.readyState === WebSocket.OPEN) c.socket.send(frame);
    }
  }
}

function sendFleetStatus(c: Client): void {
  c.socket.send(JSON.stringify({ type: "fleet_status", ts: Date.now(), counts: { total: knownDrones.size }, drones: [] }));
}

const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(values.port) });

wss.on("connection", (ws, req) => {
  if (req.url?.startsWith("/relay")) return onRelay(ws);
  const clientId = nextClientId++;
  const client: Client = { socket: ws, subscriptions: null, lastHeartbeat: Date.now() };
  clients.set(clientId, client);
  ws.on("message", (data) => {
    let message: { type?: string; drone_ids?: unknown; request_id?: string };
    try {
      message = JSON.parse(data.toString()) as typeof message;
    } catch {
      return;
    }
    switch (message.type) {
      case "subscribe_telemetry":
        client.subscriptions = message.drone_ids === "all" ? "all" : new Set(Array.isArray(message.drone_ids) ? (message.drone_ids as string[]) : []);
        ws.send(JSON.stringify({ type: "subscribed", request_id: message.request_id, drone_ids: message.drone_ids, batch: false }));
        break;
      case "ping":
        client.lastHeartbeat = Date.now();
        ws.send(JSON.stringify({ type: "pong", request_id: message.request_id, ts: Date.now() }));
        break;
      default:
        break;
    }
  });
  ws.on("close", () => clients.delete(clientId));
  ws.on("error", () => clients.delete(clientId));
  sendFleetStatus(client);
});

/** A relay: each telemetry update goes to Redis (PUBLISH + HSET), acked when Redis has answered. */
function onRelay(ws: WebSocket): void {
  ws.on("message", (data) => {
    let m: { type?: string; batch_id?: number; updates?: Record<string, unknown>[]; request_id?: string };
    try {
      m = JSON.parse(data.toString()) as typeof m;
    } catch {
      return;
    }
    if (m.type === "relay_hello") {
      ws.send(JSON.stringify({ type: "hello_ack", fleet: "baseline", last_seq: {} }));
    } else if (m.type === "telemetry_batch" && Array.isArray(m.updates)) {
      const cmds: string[][] = [];
      let accepted = 0;
      for (const u of m.updates) {
        const id = u.drone_id;
        if (typeof id !== "string") continue;
        knownDrones.add(id);
        const key = `telemetry:${id}`;
        cmds.push(["publish", key, JSON.stringify(u)]);
        const h = ["hset", key];
        for (const [k, v] of Object.entries(u)) h.push(k, String(v));
        cmds.push(h);
        accepted++;
      }
      const ack = { type: "batch_ack", batch_id: m.batch_id, accepted, duplicates: 0, rejected: m.updates.length - accepted, errors: [] };
      bus.pipeline(cmds).then(
        () => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(ack)),
        (err: Error) => process.stderr.write(`baseline: redis error: ${err.message}\n`),
      );
    } else if (m.type === "ping") {
      ws.send(JSON.stringify({ type: "pong", request_id: m.request_id, ts: Date.now() }));
    }
  });
  ws.on("error", () => {});
}

const statusTimer = setInterval(() => {
  for (const c of clients.values()) if (c.socket.readyState === WebSocket.OPEN) sendFleetStatus(c);
}, 5000);

wss.on("listening", () => {
  const a = wss.address();
  process.stdout.write(`LISTENING ${typeof a === "object" && a ? a.port : 0}\n`);
});

async function shutdown(): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  clearInterval(statusTimer);
  for (const c of wss.clients) c.terminate();
  wss.close();
  // Leave the machine's Redis as it was: drop the latest-state hashes this run wrote.
  const ids = [...knownDrones];
  try {
    for (let i = 0; i < ids.length; i += 500) await bus.del(ids.slice(i, i + 500).map((d) => `telemetry:${d}`));
  } catch (err) {
    process.stderr.write(`baseline: cleanup failed: ${(err as Error).message}\n`);
  }
  if (subscriberDisconnects) process.stderr.write(`baseline: redis subscriber disconnected ${subscriberDisconnects} time(s)\n`);
  bus.close();
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());
// The bench closes our stdin when it goes away: never outlive it.
process.stdin.on("end", () => void shutdown());
process.stdin.resume();
