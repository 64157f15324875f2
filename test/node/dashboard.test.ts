/**
 * The operator dashboard in a real browser (Debian's chromium driven by playwright-core) against
 * the real stack: wrangler dev serving the page and the edge, the relay with 5 simulated drones,
 * Postgres through the local proxy. Screenshots go to test-artifacts/ (gitignored).
 *
 * Covers: sign-in through the link `npm start` prints (token stripped from the address bar), every
 * drone in the table and moving, a waypoint set by clicking the map (ack and mission_update), a
 * geofence rejection with its rule and clickable suggestions, a viewer without controls, the
 * relay-offline banner when the relay goes away; the base map from a local tile server with the
 * drones, geofence and no-fly zones on the right pixels and the grid when tiles fail; drones whose
 * source reports no state (state_known: false, from a relay of the test's own) shown as unknown
 * with what is inferred, and the alert of a conflict collision avoidance cannot resolve with its
 * drones, event and what to do; a token that expires while the page is open (the edge's 4001)
 * renewed in place; a 4002 answered with a notice and a lower rate; and the page at 1,000 drones
 * streaming at 1 Hz (frame times and long tasks, in test-artifacts/dashboard-perf.json;
 * DASHBOARD_PROFILE=1 adds a CPU profile and the trace).
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page, type WebSocketRoute } from "playwright-core";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { offsetM, type LatLon } from "../../edge/domain/geo";
import type { FleetConfig } from "../../edge/domain/fleet-config";
import { isNewerSample, parseEdgeToDashboard } from "../../edge/protocol";
import { signToken } from "../../edge/worker/auth";
import { REPO_ROOT, resolveAuthSecret } from "../../scripts/dev-vars";
import { killProcessGroup, startStack, type Stack } from "../../scripts/stack";
import { blend, decodePng, decodeTileColour, hexRgb, near, pixel, screenOf, startTileServer, tileColour, tileTranslation, worldPixel, type Image, type Rgb, type TileServer } from "../fixtures/tiles";
import { createTestDatabase } from "./support";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const DRONES = 5;
const FLEET = `dash-${randomUUID().slice(0, 8)}`;
const ARTIFACTS = resolve(REPO_ROOT, "test-artifacts");


/** The page's DOM as the in-page callbacks below use it (this file compiles without the DOM lib;
 * the callbacks run in the browser). */
type PageEl = {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  querySelector(selector: string): PageEl | null;
  querySelectorAll(selector: string): ArrayLike<PageEl> & Iterable<PageEl>;
};
declare const document: Pick<PageEl, "querySelector" | "querySelectorAll">;
declare const window: { scrollTo(x: number, y: number): void };

type RowData = { id: string; seq: number; pos: string; status: string; link: string; plan: string };

/** Wait until the page has drawn two more animation frames (its map draws in them). */
const frames = (p: Page) => p.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))");

/** The map canvas's own account of what it drew (data-* attributes). */
async function mapStats(p: Page): Promise<Record<string, string | undefined>> {
  return p.$eval("#map canvas", (c) => ({ ...(c as unknown as PageEl).dataset }));
}

/** Wait until every tile in view has arrived and been drawn. */
async function tilesDrawn(p: Page): Promise<void> {
  await p.waitForFunction(() => {
    const t = (document.querySelector("#map canvas") as unknown as PageEl | null)?.dataset.tiles ?? "";
    const [a, b] = t.split("/");
    return !!t && a === b && Number(b) > 0;
  }, undefined, { timeout: 15_000 });
  await frames(p);
}

/** Status colours as the page's legend shows them. */
async function legendColours(p: Page): Promise<Map<string, Rgb>> {
  const items = await p.$$eval("#map-legend .legend-item", (els) =>
    els.map((e) => {
      const el = e as unknown as PageEl;
      const swatch = el.querySelector("i") as unknown as { style: { background: string } } | null;
      return [(el.textContent ?? "").trim().replace(/ /g, "_"), swatch?.style.background ?? ""] as const;
    }),
  );
  const out = new Map<string, Rgb>();
  for (const [status, css] of items) {
    const m = /rgb\((\d+), (\d+), (\d+)\)/.exec(css);
    if (m) out.set(status, [Number(m[1]), Number(m[2]), Number(m[3])]);
  }
  return out;
}

type TraceEvent = { name: string; ph: string; pid: number; tid: number; ts?: number; dur?: number; tdur?: number; args?: { name?: string; data?: Record<string, unknown> } };

const isTraceEvent = (v: unknown): v is TraceEvent =>
  typeof v === "object" && v !== null && "name" in v && typeof v.name === "string" && "ph" in v && "pid" in v && "tid" in v;

/** What one long task on the page's main thread spent its time in (the trace's nested events). */
type TaskAccount = { wall_ms: number; cpu_ms: number; inside: string[] };

/**
 * The page's main thread over a trace: CPU time (thread time, which a busy machine does not
 * inflate the way it inflates wall time) of all its tasks, of each animation frame, and of the
 * longest task, and what the longest tasks were made of. The trace holds every renderer of the
 * browser (the blank control page's too): the page's main thread is the renderer main thread
 * that ran the most. Tasks nest (a scheduler task inside the thread's own): only the outermost
 * count. `longest_page_task` leaves out tasks that ran none of the page's script and no rendering:
 * those are the browser's own messages, such as the DevTools commands that start and stop the
 * trace and the profiler at the window's edges.
 */
function mainThreadCpu(events: TraceEvent[]): {
  cpu_ms: number;
  frame_cpu_ms: { p50: number; p99: number; max: number };
  longest_task: { wall_ms: number; cpu_ms: number };
  longest_page_task: { wall_ms: number; cpu_ms: number };
  /** The most CPU time any one task of the page took. */
  page_task_cpu_max_ms: number;
  longest_tasks: TaskAccount[];
} {
  const mains = events.filter((e) => e.ph === "M" && e.name === "thread_name" && e.args?.name === "CrRendererMain");
  const isTask = (e: TraceEvent) => e.dur !== undefined && /RunTask$/.test(e.name);
  const busiest = mains
    .map((m) => ({ m, busy: events.reduce((a, e) => (e.pid === m.pid && e.tid === m.tid && isTask(e) ? a + (e.dur ?? 0) : a), 0) }))
    .sort((a, b) => b.busy - a.busy)[0]?.m;
  const on = events.filter((e) => busiest && e.pid === busiest.pid && e.tid === busiest.tid && e.dur !== undefined);
  const tasks: TraceEvent[] = [];
  let end = -Infinity;
  for (const t of on.filter(isTask).sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0) || (b.dur ?? 0) - (a.dur ?? 0))) {
    if ((t.ts ?? 0) < end) continue;
    tasks.push(t);
    end = (t.ts ?? 0) + (t.dur ?? 0);
  }
  const PAGE_WORK = new Set(["FunctionCall", "EventDispatch", "TimerFire", "FireAnimationFrame", "Layout", "UpdateLayoutTree", "Paint", "Commit", "ParseHTML", "EvaluateScript"]);
  const within = (t: TraceEvent, e: TraceEvent) => e !== t && (e.ts ?? 0) >= (t.ts ?? 0) && (e.ts ?? 0) + (e.dur ?? 0) <= (t.ts ?? 0) + (t.dur ?? 0);
  const pageTasks = tasks.filter((t) => on.some((e) => PAGE_WORK.has(e.name) && within(t, e)));
  const longestPage = pageTasks.reduce<TraceEvent | null>((a, e) => (!a || (e.dur ?? 0) > (a.dur ?? 0) ? e : a), null);
  const frames = on.filter((e) => e.name === "FireAnimationFrame").map((e) => (e.tdur ?? 0) / 1000).sort((a, b) => a - b);
  const byLength = tasks.slice().sort((a, b) => (b.dur ?? 0) - (a.dur ?? 0));
  const longest = byLength[0] ?? null;
  const r1 = (v: number) => Number(v.toFixed(1));
  // The events nested in a task, longest first, with what names them (the function, the frame type).
  const inside = (t: TraceEvent): string[] =>
    on
      .filter((e) => !isTask(e) && within(t, e) && (e.dur ?? 0) >= 2_000)
      .sort((a, b) => (b.dur ?? 0) - (a.dur ?? 0))
      .slice(0, 8)
      .map((e) => {
        const d = e.args?.data ?? {};
        const what = [d.type, d.functionName, d.url ? `${String(d.url).split("/").pop()}:${d.lineNumber}:${d.columnNumber}` : undefined].filter(Boolean).join(" ");
        return `${e.name}${what ? ` (${what})` : ""} ${r1((e.dur ?? 0) / 1000)} ms wall / ${r1((e.tdur ?? 0) / 1000)} ms cpu`;
      });
  return {
    cpu_ms: Math.round(tasks.reduce((a, e) => a + (e.tdur ?? 0), 0) / 1000),
    frame_cpu_ms: { p50: r1(pct(frames, 50)), p99: r1(pct(frames, 99)), max: r1(frames.at(-1) ?? NaN) },
    longest_task: { wall_ms: Math.round((longest?.dur ?? 0) / 1000), cpu_ms: Math.round((longest?.tdur ?? 0) / 1000) },
    longest_page_task: { wall_ms: Math.round((longestPage?.dur ?? 0) / 1000), cpu_ms: Math.round((longestPage?.tdur ?? 0) / 1000) },
    page_task_cpu_max_ms: r1(Math.max(0, ...pageTasks.map((t) => (t.tdur ?? 0) / 1000))),
    longest_tasks: byLength.slice(0, 5).map((t) => ({ wall_ms: r1((t.dur ?? 0) / 1000), cpu_ms: r1((t.tdur ?? 0) / 1000), inside: inside(t) })),
  };
}

/** Percentile of sorted numbers. */
const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN);

/** The drone table as data. */
async function tableRows(page: Page): Promise<RowData[]> {
  return page.$$eval("#drone-table tbody tr[data-drone-id]", (trs) =>
    trs.map((tr) => {
      const el = tr as unknown as PageEl;
      const cells = [...el.querySelectorAll("td")].map((td) => td.textContent ?? "");
      return { id: el.dataset.droneId ?? "", seq: Number(el.dataset.seq ?? -1), pos: el.dataset.pos ?? "", status: cells[1] ?? "", link: cells[7] ?? "", plan: cells[8] ?? "" };
    }),
  );
}

describe("operator dashboard in a browser", () => {
  let stack: Stack | undefined;
  let browser: Browser | undefined;
  let operator: BrowserContext | undefined;
  let page: Page;
  const unexpected: string[] = [];
  const pageErrors: string[] = [];
  /** The operator page's dashboard sockets, passed through to the edge so a test can drop one. */
  const sockets: { page: WebSocketRoute; edge: WebSocketRoute; sent: string[] }[] = [];

  const context = () =>
    [
      `unexpected exits: ${unexpected.join(", ") || "none"}`,
      `page errors: ${pageErrors.slice(-5).join(" | ") || "none"}`,
      "edge output (last 20 lines):",
      ...(stack?.recentOutput("edge").slice(-20) ?? []),
      "relay output (last 10 lines):",
      ...(stack?.recentOutput("relay").slice(-10) ?? []),
    ].join("\n");

  const shot = (p: Page, name: string) => p.screenshot({ path: resolve(ARTIFACTS, `${name}.png`), fullPage: false });

  let db: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    db = await createTestDatabase("df_dash");
    stack = await startStack({
      fleet: FLEET,
      drones: DRONES,
      rate: 2,
      port: 0,
      databaseUrl: db.url,
      cron: false,
      healthTimeoutMs: 90_000,
      log: () => {},
      output: () => {},
      onUnexpectedExit: (child, code, signal) => unexpected.push(`${child} (${signal ?? `code ${code}`})`),
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    operator = await browser.newContext({ viewport: { width: 1480, height: 1000 } });
    await operator.routeWebSocket(/\/v1\/fleets\/[^/]+\/ws/, (ws) => {
      const edge = ws.connectToServer();
      const conn = { page: ws, edge, sent: [] as string[] };
      sockets.push(conn);
      ws.onMessage((m) => {
        conn.sent.push(String(m));
        edge.send(m);
      });
    });
    page = await operator.newPage();
    page.on("pageerror", (err) => pageErrors.push(err.message));
  }, 150_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await stack?.stop();
    await db?.drop().catch(() => {});
  }, 60_000);

  it("serves the page at / with security headers, and keeps /health and /v1 on the Worker", async () => {
    const s = stack!;
    const res = await fetch(`${s.edgeUrl}/`, { signal: AbortSignal.timeout(5_000) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(await res.text()).toContain('src="/app.js?v=');
    const health = await fetch(`${s.edgeUrl}/health`, { signal: AbortSignal.timeout(5_000) });
    expect(health.status).toBe(200);
    const missing = await fetch(`${s.edgeUrl}/no-such-page`, { signal: AbortSignal.timeout(5_000) });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });

  it("signs in through the printed link, strips the token, and shows every drone moving", async () => {
    const s = stack!;
    await page.goto(s.dashboardUrl);
    await page.waitForSelector("#app:not([hidden])", { timeout: 15_000 });
    expect(page.url()).not.toContain("token=");
    expect(await page.textContent("#fleet-name")).toBe(FLEET);
    expect(await page.textContent("#who")).toContain("operator");
    await page.waitForSelector('#conn[data-state="open"]', { timeout: 15_000 });

    await page.waitForFunction((n) => document.querySelectorAll("#drone-table tbody tr[data-seq]").length >= n, DRONES, { timeout: 30_000 });
    const first = await tableRows(page);
    expect(first.map((r) => r.id).sort()).toEqual(Array.from({ length: DRONES }, (_, i) => `drone_${i}`));

    // Every drone's data moves on; every airborne one changes position.
    const firstById = new Map(first.map((r) => [r.id, r]));
    await page.waitForFunction(
      (prev) => {
        const rows = [...document.querySelectorAll("#drone-table tbody tr[data-drone-id]")];
        return rows.length >= prev.length && rows.every((tr) => {
          const p = prev.find((x) => x.id === tr.dataset.droneId);
          return p && Number(tr.dataset.seq) > p.seq;
        });
      },
      first,
      { timeout: 20_000 },
    );
    // A drone taking off or landing moves only vertically, and one may be turning at a corner:
    // wait (bounded) until every drone in horizontal flight has changed position.
    const moving = ["flying", "returning"];
    await page
      .waitForFunction(
        ({ prev, moving }) =>
          [...document.querySelectorAll("#drone-table tbody tr[data-drone-id]")].every((tr) => {
            const status = (tr.querySelectorAll("td")[1]?.textContent ?? "").trim().toLowerCase();
            const p = prev.find((x) => x.id === (tr as unknown as PageEl).dataset.droneId);
            return !moving.includes(status) || (p !== undefined && (tr as unknown as PageEl).dataset.pos !== p.pos);
          }),
        { prev: first, moving },
        { timeout: 20_000 },
      )
      .catch(() => undefined); // the assertions below say which drone did not move
    const later = await tableRows(page);
    const airborne = later.filter((r) => moving.includes(r.status.trim().toLowerCase()));
    expect(airborne.length).toBeGreaterThan(0);
    for (const r of airborne) expect(r.pos, `${r.id} should have moved`).not.toBe(firstById.get(r.id)!.pos);
    expect(later.every((r) => r.link === "live")).toBe(true);
    await shot(page, "dashboard-operator");
  }, 90_000);

  it("modifies a waypoint by clicking the map and shows the ack and the mission_update", async () => {
    // A drone in the air with battery to spare (the simulator refuses commands below 25 %).
    const rows = await tableRows(page);
    const target = rows.find((r) => r.status === "flying") ?? rows[0]!;
    await page.click(`#drone-table tbody tr[data-drone-id="${target.id}"]`);
    await page.waitForSelector(`#selected .sel-id:text("${target.id}")`);
    await page.click('button[data-mode="waypoint"]');
    await page.waitForSelector("#map-hint:not([hidden])");

    const box = (await page.locator("#map canvas").boundingBox())!;
    // Near home (the view is centred on the geofence around home); if the separation rule refuses a
    // point because of another drone's path, try another one.
    const offsets = [
      [40, -30],
      [-45, 35],
      [25, 50],
      [-60, -40],
      [90, 60],
      [-100, 70],
      [110, -80],
      [-80, -110],
    ] as const;
    let acked: string | null = null;
    let lastAnswer = "";
    for (const [dx, dy] of offsets) {
      const before = await page.$$eval("#ledger li.cmd.mine", (l) => l.length);
      await page.mouse.click(box.x + box.width / 2 + dx, box.y + box.height / 2 + dy);
      await page.waitForFunction((n) => document.querySelectorAll("#ledger li.cmd.mine").length > n, before, { timeout: 5_000 });
      const id = await page.$eval("#ledger li.cmd.mine", (li) => (li as unknown as PageEl).dataset.commandId!);
      await page.waitForSelector(`#ledger li[data-command-id="${id}"]:is(.acked, .rejected, .failed, .timeout)`, { timeout: 15_000 }).catch(() => {});
      const state = await page.$eval(`#ledger li[data-command-id="${id}"]`, (li) => (li as unknown as PageEl).dataset.status ?? "");
      lastAnswer = `${state}: ${await page.textContent(`#ledger li[data-command-id="${id}"]`)}`;
      if (state === "acked") {
        acked = id;
        break;
      }
      if (state !== "rejected") break; // timeout/failed: a relay or simulator problem, reported below
    }
    expect(acked, `no waypoint was acked; last answer ${lastAnswer}\n${context()}`).not.toBeNull();
    // The ledger shows the whole way: pending → sent → acked.
    const trail = await page.textContent(`#ledger li[data-command-id="${acked}"] .cmd-trail`);
    expect(trail).toMatch(/sent/);
    expect(trail).toMatch(/acked/);
    // mission_update (waypoint_modified) reached the page: the drone has a waypoint plan.
    await page.waitForFunction((id) => document.querySelector(`#drone-table tr[data-drone-id="${id}"] td:last-child`)?.textContent === "waypoint", target.id, { timeout: 10_000 });
    await page.waitForFunction(() => document.querySelector('#selected dd[data-field="Plan"]')?.textContent?.startsWith("waypoint"));
    await shot(page, "dashboard-waypoint-acked");
  }, 90_000);

  it("shows a geofence rejection with its rule and clickable suggestions", async () => {
    // Fit the ±1.5 km geofence with its margin: the map's corner is then outside it.
    await page.click("#fit-fence");
    const box = (await page.locator("#map canvas").boundingBox())!;
    await page.mouse.click(box.x + 10, box.y + 10);
    await page.waitForSelector("#rejection", { timeout: 15_000 });
    expect(await page.textContent("#rejection-rule")).toBe("geofence");
    const suggestions = page.locator("#rejection button.suggestion");
    expect(await suggestions.count()).toBeGreaterThan(0);
    await shot(page, "dashboard-geofence-rejection");

    // A suggestion resends the command to the suggested point: a new command, not rejected by the fence.
    const before = await page.$$eval("#ledger li.cmd.mine", (l) => l.length);
    await suggestions.first().click();
    await page.waitForFunction((n) => document.querySelectorAll("#ledger li.cmd.mine").length > n, before, { timeout: 5_000 });
    const id = await page.$eval("#ledger li.cmd.mine", (li) => (li as unknown as PageEl).dataset.commandId!);
    await page.waitForSelector(`#ledger li[data-command-id="${id}"]:is(.acked, .rejected, .failed, .timeout)`, { timeout: 15_000 });
    expect(await page.textContent(`#ledger li[data-command-id="${id}"] .cmd-summary`)).toContain("suggested alternative");
    const outcome = await page.$eval(`#ledger li[data-command-id="${id}"]`, (li) => `${(li as unknown as PageEl).dataset.status} ${li.querySelector(".cmd-msg")?.textContent ?? ""}`);
    expect(outcome).not.toMatch(/geofence/);
    await page.keyboard.press("Escape");
  }, 60_000);

  it("plans a mission on the map, assigns it and shows the ranked candidates", async () => {
    await page.click("#fit-fleet");
    await page.click('button[data-mode="mission"]');
    const box = (await page.locator("#map canvas").boundingBox())!;
    await page.mouse.click(box.x + box.width / 2 + 60, box.y + box.height / 2 - 50);
    await page.mouse.click(box.x + box.width / 2 - 70, box.y + box.height / 2 - 60);
    await page.waitForFunction(() => document.querySelectorAll("#mission ol.draft li").length === 2);
    const before = await page.$$eval("#ledger li.cmd.mine", (l) => l.length);
    await page.click("#assign-auto");
    await page.waitForFunction((n) => document.querySelectorAll("#ledger li.cmd.mine").length > n, before, { timeout: 5_000 });
    const id = await page.$eval("#ledger li.cmd.mine", (li) => (li as unknown as PageEl).dataset.commandId!);
    await page.waitForSelector(`#ledger li[data-command-id="${id}"]:is(.acked, .rejected, .failed, .timeout)`, { timeout: 15_000 });
    await page.waitForSelector("#candidates tbody tr", { timeout: 5_000 });
    expect(await page.locator("#candidates tbody tr").count()).toBeGreaterThan(0);
    const state = await page.$eval(`#ledger li[data-command-id="${id}"]`, (li) => (li as unknown as PageEl).dataset.status);
    if (state === "acked") {
      // mission_update (mission_assigned): the chosen drone's plan in the table.
      const chosen = await page.$eval("#candidates tr.chosen td:nth-child(2)", (td) => td.textContent!);
      await page.waitForFunction((d) => document.querySelector(`#drone-table tr[data-drone-id="${d}"] td:last-child`)?.textContent?.startsWith("mission"), chosen, { timeout: 10_000 });
    }
    await shot(page, "dashboard-mission-candidates");
    await page.keyboard.press("Escape");
  }, 60_000);

  it("emergency lands a drone only after confirmation", async () => {
    const rows = await tableRows(page);
    const target = rows.filter((r) => r.status === "flying").at(-1) ?? rows.at(-1)!;
    await page.click(`#drone-table tbody tr[data-drone-id="${target.id}"]`);
    await page.click("#act-land");
    await page.waitForSelector("#land-dialog[open]");
    // Cancel sends nothing.
    const before = await page.$$eval("#ledger li.cmd.mine", (l) => l.length);
    await page.click('#land-dialog button[value="cancel"]');
    await page.waitForSelector("#land-dialog:not([open])", { state: "attached" });
    expect(await page.$$eval("#ledger li.cmd.mine", (l) => l.length)).toBe(before);
    await page.click("#act-land");
    await page.fill("#land-reason", "browser test");
    await page.click("#land-confirm");
    await page.waitForFunction((n) => document.querySelectorAll("#ledger li.cmd.mine").length > n, before, { timeout: 5_000 });
    const id = await page.$eval("#ledger li.cmd.mine", (li) => (li as unknown as PageEl).dataset.commandId!);
    await page.waitForSelector(`#ledger li[data-command-id="${id}"].acked`, { timeout: 15_000 });
    await page.waitForFunction((d) => /landing|landed/.test(document.querySelector(`#drone-table tr[data-drone-id="${d}"] td.status`)?.textContent ?? ""), target.id, { timeout: 15_000 });
  }, 60_000);

  describe("base map", () => {
    let tiles: TileServer;
    let ctx: BrowserContext;
    let p: Page;
    /** The latest sample per drone among the frames passed to the page, and whether frames flow. */
    const latest = new Map<string, { seq: number; lat: number; lon: number; status: string }>();
    let frozen = false;
    const zone = { east: [800, 1100], north: [-150, 150] } as const;
    let config: FleetConfig;

    beforeAll(async () => {
      const s = stack!;
      tiles = await startTileServer();
      // A no-fly zone east of home, clear of the simulator's patrols (≤ 480 m) and of the points
      // the other tests click.
      const auth = (t: string) => ({ authorization: `Bearer ${t}` });
      const cur = (await (await fetch(`${s.edgeUrl}/v1/fleets/${FLEET}/config`, { headers: auth(s.tokens.admin) })).json()) as FleetConfig;
      const corner = (e: number, n: number) => offsetM(cur.home, e, n);
      const polygon = [corner(zone.east[0], zone.north[0]), corner(zone.east[1], zone.north[0]), corner(zone.east[1], zone.north[1]), corner(zone.east[0], zone.north[1])];
      const put = await fetch(`${s.edgeUrl}/v1/fleets/${FLEET}/config`, {
        method: "PUT",
        headers: { ...auth(s.tokens.admin), "content-type": "application/json" },
        body: JSON.stringify({ ...cur, no_fly_zones: [{ id: "test-zone", name: "test zone", polygon }] }),
      });
      expect(put.status, await put.clone().text()).toBe(200);
      config = (await put.json()) as FleetConfig;

      ctx = await browser!.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
      // Frames pass through to the edge and back; `frozen` holds the edge's frames back so the
      // page's picture stands still while it is measured, and `latest` is what it was given.
      await ctx.routeWebSocket(/\/v1\/fleets\/[^/]+\/ws/, (ws) => {
        const edge = ws.connectToServer();
        ws.onMessage((m) => edge.send(m));
        edge.onMessage((m) => {
          if (frozen) return;
          const r = parseEdgeToDashboard(String(m));
          if (r.ok) {
            const f = r.value;
            const samples = f.type === "telemetry" ? [f] : f.type === "telemetry_batch" ? f.updates : f.type === "fleet_status" ? f.drones : [];
            for (const x of samples) if (isNewerSample(x, latest.get(x.drone_id))) latest.set(x.drone_id, { seq: x.seq, lat: x.lat, lon: x.lon, status: x.status });
          }
          ws.send(m);
        });
      });
      p = await ctx.newPage();
      p.on("pageerror", (err) => pageErrors.push(err.message));
    }, 60_000);

    afterAll(async () => {
      await ctx?.close().catch(() => {});
      await tiles?.close();
    });

    /** Hold frames back and wait until the page shows exactly the last ones it was given. */
    async function freeze(): Promise<void> {
      frozen = true;
      const want = Object.fromEntries([...latest].map(([id, v]) => [id, v.seq]));
      await p.waitForFunction(
        (want) => Object.entries(want).every(([id, seq]) => Number((document.querySelector(`#drone-table tr[data-drone-id="${id}"]`) as unknown as PageEl | null)?.dataset.seq) === seq),
        want,
        { timeout: 10_000 },
      );
      await frames(p);
    }

    async function canvasImage(): Promise<Image> {
      return decodePng(await p.locator("#map canvas").screenshot());
    }

    const fenceTint = { colour: hexRgb("#38bdf8"), alpha: 0.04 };

    it("draws tiles from the configured server under the drones, each drone on its Web Mercator pixel", async () => {
      const s = stack!;
      const attribution = "Test tiles · generated";
      await p.goto(`${s.edgeUrl}/?token=${s.tokens.operator}&tiles=${encodeURIComponent(tiles.template)}&tiles_attribution=${encodeURIComponent(attribution)}`);
      await p.waitForSelector('#conn[data-state="open"]', { timeout: 15_000 });
      // The setting is remembered and taken out of the address, like the token.
      expect(p.url()).not.toMatch(/token=|tiles=/);
      expect(await p.evaluate("localStorage.getItem('dronefleet.basemap')")).toContain(tiles.template);
      await p.waitForFunction((n) => document.querySelectorAll("#drone-table tbody tr[data-seq]").length >= n, DRONES, { timeout: 30_000 });
      await p.waitForSelector("#map-attribution:not([hidden])");
      expect(await p.textContent("#map-attribution")).toBe(attribution);
      expect(await p.locator("#tiles-toggle").isVisible()).toBe(true);
      await tilesDrawn(p);
      expect(tiles.requests.some((r) => r.startsWith("tiles/"))).toBe(true);
      const colours = await legendColours(p);

      // Centre on a flying drone; then every drone at least 24 px from the others and from home
      // (so its centre pixel is its own) is checked, zooming in a level at a time until some are.
      const flying = (await tableRows(p)).find((r) => r.status.trim().toLowerCase() === "flying");
      if (flying) {
        await p.click(`#drone-table tbody tr[data-drone-id="${flying.id}"]`);
        await p.click("#selected .sel-head button:text('Center')");
        await tilesDrawn(p);
      }
      const checked: string[] = [];
      for (let attempt = 0; attempt < 6 && checked.length === 0; attempt++) {
        if (attempt > 0) {
          await p.click("#zoom-in");
          await tilesDrawn(p);
        }
        await freeze();
        const stats = await mapStats(p);
        const z = Number(stats.tileZoom);
        // With tiles the zoom is a whole level, the tiles' own: drawn 1:1.
        expect(Number(stats.zoom)).toBe(z);
        const img = await canvasImage();
        await shot(p, "dashboard-basemap");
        frozen = false;
        const t = tileTranslation(img, [fenceTint]);
        expect(t.share, "share of the map's pixels that are tile pixels in one consistent place").toBeGreaterThan(0.3);
        const home = worldPixel(config.home.lat, config.home.lon, z);
        const placed = [...latest].map(([id, d]) => ({ id, d, w: worldPixel(d.lat, d.lon, z) }));
        for (const { id, d, w } of placed) {
          const crowded = Math.hypot(w.x - home.x, w.y - home.y) < 24 || placed.some((o) => o.id !== id && Math.hypot(o.w.x - w.x, o.w.y - w.y) < 24);
          const at = screenOf(w, t, img).filter((q) => q.x >= 3 && q.y >= 3 && q.x < img.width - 3 && q.y < img.height - 3);
          if (crowded || at.length !== 1) continue;
          const colour = colours.get(d.status);
          expect(colour, `legend colour of ${d.status}`).toBeDefined();
          const q = at[0]!;
          // The arrow's centre is the drone's position: its fill colour there (±1 px for rounding).
          let hit = false;
          for (let dx = -1; dx <= 1; dx++) for (let dy = -1; dy <= 1; dy++) hit ||= near(pixel(img, Math.floor(q.x) + dx, Math.floor(q.y) + dy), colour!, 3);
          expect(hit, `${id} (${d.status}) should be drawn at (${q.x.toFixed(1)}, ${q.y.toFixed(1)}); found ${pixel(img, q.x, q.y).join(",")}`).toBe(true);
          checked.push(id);
        }
      }
      expect(checked.length, "drones checked against the tiles").toBeGreaterThan(0);
    }, 90_000);

    it("draws the geofence and no-fly zones over the tiles where they are", async () => {
      await p.click("#fit-fence");
      await tilesDrawn(p);
      const z = Number((await mapStats(p)).tileZoom);
      const img = await canvasImage();
      await shot(p, "dashboard-basemap-zones");
      const t = tileTranslation(img, [fenceTint]);
      expect(t.share).toBeGreaterThan(0.3);
      // Points between the zone's centre and its corners: the tile, under the fence's and the
      // zone's translucent fills (the zone's hatching and label may cover some).
      const poly = config.no_fly_zones[0]!.polygon;
      const c = poly.reduce((a, q) => ({ lat: a.lat + q.lat / poly.length, lon: a.lon + q.lon / poly.length }), { lat: 0, lon: 0 } as LatLon);
      let good = 0;
      let total = 0;
      for (const v of poly) {
        for (const f of [0.4, 0.6, 0.8]) {
          const w = worldPixel(c.lat + (v.lat - c.lat) * f, c.lon + (v.lon - c.lon) * f, z);
          const q = screenOf(w, t, img)[0];
          if (!q || q.x >= img.width || q.y >= img.height) continue;
          total++;
          const sx = Math.floor(q.x);
          const sy = Math.floor(q.y);
          const tileX = Math.floor(w.x / 256);
          const tileY = Math.floor(w.y / 256);
          const under = tileColour(tileX, tileY, Math.floor(w.x) - tileX * 256, Math.floor(w.y) - tileY * 256);
          const want = blend(blend(under, fenceTint.colour, fenceTint.alpha), hexRgb("#f43f5e"), 0.13);
          if (near(pixel(img, sx, sy), want, 5)) good++;
        }
      }
      expect(total).toBeGreaterThan(6);
      expect(good / total, "zone pixels composited over the right tile pixels").toBeGreaterThan(0.5);
    }, 60_000);

    it("shows the grid when the tile server fails, and when tiles are switched off", async () => {
      const s = stack!;
      await p.goto(`${s.edgeUrl}/?token=${s.tokens.operator}&tiles=${encodeURIComponent(tiles.brokenTemplate)}&tiles_attribution=Broken`);
      await p.waitForSelector('#map-attribution[data-failed="true"]', { timeout: 20_000 });
      // Marked failed at the first failures ("12 of 15 tiles failed"); unavailable once all did.
      await expect.poll(() => p.textContent("#map-attribution"), { timeout: 10_000 }).toMatch(/Broken · base map tiles unavailable: grid shown/);
      await frames(p);
      const img = await canvasImage();
      // No pixel decodes as a tile; the dark background (under the geofence's fill) is what shows.
      const bg = hexRgb("#0b1220");
      let tileLike = 0;
      let background = 0;
      let n = 0;
      for (let y = 3; y < img.height - 3; y += 7) {
        for (let x = 3; x < img.width - 3; x += 7) {
          n++;
          const c = pixel(img, x, y);
          if (decodeTileColour(c) && !near(c, bg, 12)) tileLike++;
          if (near(c, bg, 3) || near(c, blend(bg, fenceTint.colour, fenceTint.alpha), 3)) background++;
        }
      }
      // Drones, trails, labels and grid lines can decode as a tile colour by chance (a few %, more
      // with more drones in view); a canvas with tiles drawn decodes almost everywhere.
      expect(tileLike / n).toBeLessThan(0.2);
      expect(background / n).toBeGreaterThan(0.5);
      await shot(p, "dashboard-basemap-fallback");

      await p.goto(`${s.edgeUrl}/?token=${s.tokens.operator}&tiles=off`);
      await p.waitForFunction((n) => document.querySelectorAll("#drone-table tbody tr[data-seq]").length >= n, DRONES, { timeout: 30_000 });
      await frames(p);
      expect(await p.locator("#map-attribution").isHidden()).toBe(true);
      expect(await p.locator("#tiles-toggle").isHidden()).toBe(true);
      expect((await mapStats(p)).tiles).toBe("");
    }, 60_000);
  });

  it("charts the hourly analytics once an hour has been aggregated", async () => {
    const s = stack!;
    // What the :02 cron does for the previous hour, done now for the current one.
    const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString();
    const res = await fetch(`${s.edgeUrl}/v1/fleets/${FLEET}/analytics/hourly/recompute?hour=${hour}`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.tokens.admin}` },
      signal: AbortSignal.timeout(30_000),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    await page.click("#hourly-refresh");
    await page.waitForSelector("#charts .uplot", { timeout: 10_000 });
    expect(await page.textContent("#hourly-status")).toMatch(/1 hour/);
    expect(await page.textContent("#insights")).not.toMatch(/not available|unavailable/);
    await page.locator("#charts").scrollIntoViewIfNeeded();
    await page.screenshot({ path: resolve(ARTIFACTS, "dashboard-full.png"), fullPage: true });
  }, 60_000);

  it("reconnects by itself after the socket drops and subscribes again", async () => {
    const conns = sockets.length;
    expect(conns).toBeGreaterThan(0);
    const last = sockets[conns - 1]!;
    const firstSub = last.sent.map((m) => JSON.parse(m) as { type: string }).find((m) => m.type === "subscribe_telemetry");
    expect(firstSub).toMatchObject({ drone_ids: "all", batch: true });
    await last.page.close({ code: 4000, reason: "test drops the socket" });
    await last.edge.close();
    await page.waitForSelector('#conn:not([data-state="open"])', { timeout: 5_000 });
    await page.waitForSelector('#conn[data-state="open"]', { timeout: 20_000 });
    expect(sockets.length).toBe(conns + 1);
    await expect.poll(() => sockets[conns]!.sent.map((m) => JSON.parse(m) as { type: string }).find((m) => m.type === "subscribe_telemetry"), { timeout: 5_000 }).toMatchObject({ drone_ids: "all", batch: true });
    // Telemetry flows again on the new socket.
    const rows = await tableRows(page);
    await page.waitForFunction((prev) => prev.every((p) => Number(document.querySelector(`#drone-table tr[data-drone-id="${p.id}"]`)?.dataset.seq) > p.seq), rows, { timeout: 15_000 });
  }, 60_000);

  it("signs in with a pasted token, and refuses a bad one with a reason", async () => {
    const s = stack!;
    const ctx = await browser!.newContext({ viewport: { width: 1200, height: 800 } });
    try {
      const p = await ctx.newPage();
      await p.goto(`${s.edgeUrl}/`);
      await p.waitForSelector("#signin:not([hidden])");
      await p.fill("#signin-token", "not-a-token");
      await p.click("#signin-form button[type=submit]");
      expect(await p.textContent("#signin-error")).toMatch(/not a token/i);
      await p.fill("#signin-token", s.tokens.relay);
      await p.click("#signin-form button[type=submit]");
      expect(await p.textContent("#signin-error")).toMatch(/relay token/i);
      await p.fill("#signin-token", s.tokens.operator);
      await p.click("#signin-form button[type=submit]");
      await p.waitForSelector('#conn[data-state="open"]', { timeout: 15_000 });
      expect(await p.textContent("#fleet-name")).toBe(FLEET);
      // Signing out forgets the token.
      await p.click("#signout");
      await p.waitForSelector("#signin:not([hidden])");
      expect(await p.inputValue("#signin-token")).toBe("");
    } finally {
      await ctx.close();
    }
  }, 60_000);

  it("a viewer sees the fleet but no command controls", async () => {
    const s = stack!;
    const viewer = await browser!.newContext({ viewport: { width: 1480, height: 1000 } });
    try {
      const vp = await viewer.newPage();
      await vp.goto(`${s.edgeUrl}/?token=${s.tokens.viewer}`);
      await vp.waitForFunction((n) => document.querySelectorAll("#drone-table tbody tr[data-seq]").length >= n, DRONES, { timeout: 30_000 });
      expect(await vp.textContent("#who")).toContain("viewer");
      await vp.click("#drone-table tbody tr[data-drone-id] >> nth=0");
      await vp.waitForSelector("#selected .sel-id");
      expect(await vp.locator(".ctl").count()).toBe(0);
      expect(await vp.locator("button[data-mode]").count()).toBe(0);
      expect(await vp.locator("#act-land, #act-waypoint, #assign-auto, #assign-selected").count()).toBe(0);
      expect(await vp.locator("#mission-panel").isHidden()).toBe(true);
      expect(await vp.locator("button", { hasText: /emergency land|assign|set waypoint|dismiss/i }).count()).toBe(0);
      // The commands the operator sent are visible to the viewer (read-only).
      await vp.waitForSelector("#ledger li.cmd", { timeout: 10_000 });
      await shot(vp, "dashboard-viewer");
    } finally {
      await viewer.close();
    }
  }, 60_000);

  it("shows drones of unknown state as unknown with what is inferred, and an unresolved conflict's alert with its drones, event and what to do", async () => {
    const s = stack!;
    const fleet = `ghost-${randomUUID().slice(0, 8)}`;
    const secret = resolveAuthSecret()!.secret;
    const relayToken = await signToken(secret, { sub: "ghost-relay", role: "relay", fleets: [fleet] }, 3600);
    const opToken = await signToken(secret, { sub: "ghost-operator", role: "operator", fleets: [fleet] }, 3600);
    const cfg = (await (await fetch(`${s.edgeUrl}/v1/fleets/${fleet}/config`, { headers: { authorization: `Bearer ${opToken}` }, signal: AbortSignal.timeout(10_000) })).json()) as FleetConfig;
    // A relay of this test's own speaking the real relay protocol, as a ROS 2 relay without state
    // topics does: armed false, status idle, mode UNKNOWN, state_known false. ghost_a and ghost_b
    // fly head-on at 40 m with critical batteries (both have right of way: collision avoidance may
    // command neither, so it cannot resolve their conflict); ghost_c stands still on the ground.
    const relay = new WebSocket(`${s.edgeUrl.replace(/^http/, "ws")}/v1/fleets/${fleet}/relay`, { headers: { authorization: `Bearer ${relayToken}` } });
    const relayLog: string[] = [];
    relay.on("message", (data) => {
      const m = JSON.parse(String(data)) as { type: string; command_id?: string; code?: string; errors?: unknown[] };
      if (m.type === "command" && m.command_id) relay.send(JSON.stringify({ type: "command_result", command_id: m.command_id, status: "failed", message: "refused by the test relay" }));
      if (m.type === "error" || (m.type === "batch_ack" && m.errors?.length)) relayLog.push(String(data).slice(0, 300));
    });
    await new Promise<void>((res, rej) => {
      relay.once("open", () => res());
      relay.once("error", rej);
    });
    relay.send(JSON.stringify({ type: "relay_hello", relay_id: "ghost-relay", source: "ros2", version: "test", drone_ids: ["ghost_a", "ghost_b", "ghost_c"] }));
    const started = Date.now();
    let batch = 0;
    const tick = () => {
      const now = Date.now();
      const t = ((now - started) / 1000) % 20;
      const at = (id: string, east: number, north: number, alt: number, heading: number, speed: number, battery: number) => {
        const p = offsetM(cfg.home, east, north);
        return { drone_id: id, seq: now, ts: now, lat: p.lat, lon: p.lon, alt_m: alt, heading_deg: heading, speed_mps: speed, climb_mps: 0, battery_pct: battery, armed: false, mode: "UNKNOWN", status: "idle", state_known: false };
      };
      relay.send(
        JSON.stringify({
          type: "telemetry_batch",
          batch_id: ++batch,
          sent_at: now,
          updates: [at("ghost_a", -150 + 6 * t, 0, 40, 90, 6, 10), at("ghost_b", 150 - 6 * t, 0, 40, 270, 6, 10), at("ghost_c", 0, 300, 0, 0, 0, 80)],
        }),
      );
    };
    tick();
    const timer = setInterval(tick, 500);
    const ctx = await browser!.newContext({ viewport: { width: 1480, height: 1000 }, deviceScaleFactor: 1 });
    try {
      const p = await ctx.newPage();
      p.on("pageerror", (err) => pageErrors.push(err.message));
      await p.goto(`${s.edgeUrl}/?token=${opToken}&tiles=off`);
      await p.waitForFunction(() => document.querySelectorAll("#drone-table tbody tr[data-seq]").length >= 3, undefined, { timeout: 30_000 });
      const rows = await tableRows(p);
      const by = new Map(rows.map((r) => [r.id, r]));
      // The table: unknown, with the inference; never the placeholder "idle".
      expect(by.get("ghost_a")?.status).toBe("unknown · airborne (inferred)");
      expect(by.get("ghost_b")?.status).toBe("unknown · airborne (inferred)");
      expect(by.get("ghost_c")?.status).toBe("unknown · no motion (inferred)");
      for (const r of rows) expect(r.status, r.id).not.toMatch(/idle/);
      expect(await p.$eval('#drone-table tr[data-drone-id="ghost_a"] td.mode', (td) => td.textContent)).toBe("unknown");
      expect(await p.locator('#drone-table tr.state-unknown[data-drone-id="ghost_a"]').count()).toBe(1);
      expect(await p.textContent("#map-legend")).toContain("state unknown");
      // The selected drone's card.
      await p.click('#drone-table tbody tr[data-drone-id="ghost_a"]');
      await p.waitForSelector('#selected dd[data-field="Armed"]');
      expect(await p.textContent('#selected dd[data-field="Status"]')).toMatch(/^state unknown · airborne \(inferred from 40 m, 6\.0 m\/s/);
      expect(await p.textContent('#selected dd[data-field="Armed"]')).toBe("unknown");
      expect(await p.textContent('#selected dd[data-field="Mode"]')).toBe("unknown");
      expect(await p.textContent("#selected")).not.toMatch(/idle|disarmed/);
      // The map: its labels say so, and so does the readout when the pointer is over the drone.
      await p.waitForFunction(() => ((document.querySelector("#map canvas") as unknown as PageEl | null)?.dataset.labelTexts ?? "").includes("ghost_c (state unknown)"), undefined, { timeout: 10_000 });
      const labels = (await mapStats(p)).labelTexts ?? "";
      expect(labels).toContain("ghost_a (state unknown, airborne)");
      expect(labels).toContain("ghost_c (state unknown)");
      await p.click("#selected .sel-head button:text('Center')");
      await frames(p);
      const box = (await p.locator("#map canvas").boundingBox())!;
      let hover = "";
      // The drone flies east at 6 m/s: look a few pixels either side of where it was centred.
      for (const dx of [0, 4, 8, 12, -4, 16]) {
        if (hover === "ghost_a") break;
        await p.mouse.move(box.x + box.width / 2 + dx, box.y + box.height / 2);
        hover = (await mapStats(p)).hover ?? "";
      }
      expect(hover).toBe("ghost_a");
      expect(await p.textContent("#map-cursor")).toMatch(/^ghost_a · unknown · airborne \(inferred\) · 40 m/);
      expect(await p.getAttribute("#map canvas", "title")).toMatch(/unknown · airborne \(inferred\)/);
      await shot(p, "dashboard-state-unknown");

      // Collision avoidance may command neither drone: the alert names both, the event, the
      // reason, and what the operator should do; its event button shows the event.
      const alertSel = '#alerts li.active[data-kind="coordination_unresolved"]';
      await p.waitForSelector(alertSel, { timeout: 40_000 }).catch(() => {
        throw new Error(`no coordination_unresolved alert; relay: ${relayLog.join(" | ") || "ok"}\n${context()}`);
      });
      const item = p.locator(alertSel).first();
      expect(await item.locator(".alert-title").textContent()).toMatch(/^Collision avoidance cannot resolve a conflict/);
      const why = await item.locator(".alert-msg").textContent();
      expect(why).toMatch(/^collision avoidance cannot resolve head-on ghost_[ab]\|ghost_[ab] \(event /);
      expect(why).toMatch(/ghost_a has the right of way \(low battery\)/);
      expect(why).toMatch(/ghost_b has the right of way \(low battery\)/);
      const drones = await item.locator(".alert-drone").evaluateAll((els) => els.map((e) => (e as unknown as PageEl).dataset.drone));
      expect(drones.sort()).toEqual(["ghost_a", "ghost_b"]);
      const eventId = await item.locator(".alert-event").getAttribute("data-event");
      expect(eventId).toBeTruthy();
      expect(await item.locator(".alert-action").textContent()).toMatch(/What to do: .*override.*emergency-land/);
      await p.waitForSelector(`#coordination li[data-event-id="${eventId}"]`, { timeout: 10_000 });
      await item.locator(".alert-event").click();
      await p.waitForSelector(`#coordination li.highlight[data-event-id="${eventId}"]`, { timeout: 2_000 });
      // The other kinds read the same way: the critical battery of the same drones.
      const battery = p.locator('#alerts li.active[data-kind="battery_critical"]').first();
      await battery.waitFor({ timeout: 15_000 });
      expect(await battery.locator(".alert-title").textContent()).toBe("Battery critical");
      expect(await battery.locator(".alert-action").textContent()).toMatch(/emergency-land/);
      await p.locator("#alerts").scrollIntoViewIfNeeded();
      await shot(p, "dashboard-unresolved-alert");
    } finally {
      clearInterval(timer);
      relay.close();
      await ctx.close().catch(() => {});
    }
  }, 120_000);

  it("renews a token that expires while the page is open: the edge closes with 4001, the page asks for a new token and keeps the view", async () => {
    const s = stack!;
    const secret = resolveAuthSecret()!.secret;
    // Expires in 15 s; the edge closes the socket 30 s (its clock-skew leeway) after that.
    const short = await signToken(secret, { sub: "renew-operator", role: "operator", fleets: [FLEET] }, 15);
    const fresh = await signToken(secret, { sub: "renew-operator", role: "operator", fleets: [FLEET] }, 3600);
    const ctx = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
    const urls: string[] = [];
    const closes: number[] = [];
    await ctx.routeWebSocket(/\/v1\/fleets\/[^/]+\/ws/, (ws) => {
      urls.push(ws.url());
      const edge = ws.connectToServer();
      edge.onClose((code, reason) => {
        closes.push(code ?? 0);
        void ws.close({ code, reason });
      });
    });
    try {
      const p = await ctx.newPage();
      p.on("pageerror", (err) => pageErrors.push(err.message));
      await p.goto(`${s.edgeUrl}/?token=${short}`);
      await p.waitForSelector('#conn[data-state="open"]', { timeout: 15_000 });
      await p.waitForFunction((n) => document.querySelectorAll("#drone-table tbody tr[data-seq]").length >= n, DRONES, { timeout: 30_000 });
      await p.evaluate("window.__sameDocument = true");
      await p.waitForSelector("#renew-dialog[open]", { timeout: 75_000 });
      expect(closes).toContain(4001);
      expect(await p.textContent("#renew-message")).toMatch(/token expired \(4001/);
      expect(await p.getAttribute("#relay-banner", "data-kind")).toBe("token");
      expect(await p.textContent("#relay-banner")).toMatch(/Paste a new token/);
      expect(await p.getAttribute("#conn", "data-state")).toBe("held");
      // The view stays: the drones are still listed, nothing was reloaded, no new socket yet.
      expect((await tableRows(p)).length).toBeGreaterThanOrEqual(DRONES);
      const socketsBefore = urls.length;
      // A token that will not do is refused with the reason, the form stays.
      await p.fill("#renew-token", s.tokens.relay);
      await p.click("#renew-submit");
      expect(await p.textContent("#renew-error")).toMatch(/relay token/);
      expect(urls.length).toBe(socketsBefore);
      await p.fill("#renew-token", fresh);
      await p.click("#renew-submit");
      await p.waitForSelector('#conn[data-state="open"]', { timeout: 15_000 });
      expect(await p.locator("#renew-dialog").getAttribute("open")).toBeNull();
      expect(await p.evaluate("window.__sameDocument === true")).toBe(true);
      expect(urls.length).toBe(socketsBefore + 1);
      expect(new URL(urls.at(-1)!).searchParams.get("access_token")).toBe(fresh);
      expect(await p.evaluate("sessionStorage.getItem('dronefleet.token')")).toBe(fresh);
      // Telemetry flows again on the renewed socket.
      const rows = await tableRows(p);
      await p.waitForFunction((prev) => prev.every((r) => Number(document.querySelector(`#drone-table tr[data-drone-id="${r.id}"]`)?.dataset.seq) > r.seq), rows, { timeout: 15_000 });
      expect(await p.locator("#relay-banner").isHidden()).toBe(true);
    } finally {
      await ctx.close().catch(() => {});
    }
  }, 150_000);

  it("shows the relay-offline banner when the relay goes away, and clears it when it is back", async () => {
    const s = stack!;
    expect(await page.locator("#relay-banner").isHidden()).toBe(true);
    await s.killRelay("SIGKILL");
    await page.waitForSelector('#relay-banner:not([hidden])[data-kind="relay"]', { timeout: 20_000 });
    expect(await page.textContent("#relay-banner")).toContain("Relay offline");
    expect(await page.getAttribute("#relay", "data-state")).toBe("down");
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, "dashboard-relay-offline");
    await s.startRelay();
    await page.waitForSelector("#relay-banner[hidden]", { state: "attached", timeout: 30_000 });
    expect(unexpected).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it("after a 4002 (too slow) shows a notice and reconnects asking for a lower rate", async () => {
    const conns = sockets.length;
    const last = sockets[conns - 1]!;
    // What the edge does to a dashboard that stayed behind its flow window: close with 4002.
    await last.page.close({ code: 4002, reason: "too slow" });
    await last.edge.close();
    await page.waitForSelector('#conn[data-state="open"]', { timeout: 20_000 });
    await expect.poll(() => sockets.length, { timeout: 10_000 }).toBe(conns + 1);
    await expect
      .poll(() => sockets[conns]!.sent.map((m) => JSON.parse(m) as { type: string }).find((m) => m.type === "subscribe_telemetry"), { timeout: 5_000 })
      .toMatchObject({ drone_ids: "all", batch: true, max_rate_hz: 2 });
    await page.waitForSelector('#relay-banner[data-kind="slow"]:not([hidden])', { timeout: 5_000 });
    expect(await page.textContent("#relay-banner")).toMatch(/too slowly \(4002\).*at most 2 updates per drone per second/);
    expect(await page.textContent("#toasts")).toMatch(/too slowly/);
    // A second 4002 halves the rate again.
    const again = sockets[conns]!;
    await again.page.close({ code: 4002, reason: "too slow" });
    await again.edge.close();
    await expect.poll(() => sockets.length, { timeout: 20_000 }).toBe(conns + 2);
    await expect
      .poll(() => sockets[conns + 1]!.sent.map((m) => JSON.parse(m) as { type: string }).find((m) => m.type === "subscribe_telemetry"), { timeout: 10_000 })
      .toMatchObject({ max_rate_hz: 1 });
    // Telemetry flows at the lower rate.
    const rows = await tableRows(page);
    await page.waitForFunction((prev) => prev.every((p) => Number(document.querySelector(`#drone-table tr[data-drone-id="${p.id}"]`)?.dataset.seq) > p.seq), rows, { timeout: 15_000 });
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it("takes an `alerts` frame (many changes in one tick) into the Alerts list, with one toast for all", async () => {
    const conn = sockets.at(-1)!;
    const t = Date.now();
    const raised = Array.from({ length: 25 }, (_, i) => ({
      alert_id: `al-batch-${i}`,
      drone_id: `batch-${i}`,
      kind: "link_lost",
      severity: "critical",
      message: `batch-${i} has sent no telemetry for over 15 s`,
      value: null,
      raised_at: t,
      cleared_at: null,
    }));
    // What the edge sends when a relay with 25 drones goes away: one frame for all of them.
    conn.page.send(JSON.stringify({ type: "alerts", raised, cleared: [] }));
    await expect.poll(() => page.locator('#alerts li.active[data-kind="link_lost"][data-alert^="al-batch-"]').count(), { timeout: 10_000 }).toBe(25);
    // One toast for the frame: its summary, or, when the page showed 3 alert toasts in the last
    // 5 s (earlier tests raise alerts), the window's "N more alerts" counting all 25.
    await expect
      .poll(
        async () => {
          const text = (await page.textContent("#toasts")) ?? "";
          const more = /(\d+) more alerts: see the Alerts list/.exec(text);
          return /25 alerts raised \(25 critical\): link lost/.test(text) || (more !== null && Number(more[1]) >= 25);
        },
        { timeout: 10_000 },
      )
      .toBe(true);
    // None of the 25 got a toast of its own (a real drone of an earlier test may have).
    expect(await page.locator("#toasts .toast", { hasText: /batch-\d+ has sent no telemetry/ }).count()).toBe(0);
    // And cleared the same way.
    conn.page.send(JSON.stringify({ type: "alerts", raised: [], cleared: raised.map((a) => ({ ...a, cleared_at: t + 5_000 })) }));
    await expect.poll(() => page.locator('#alerts li.active[data-alert^="al-batch-"]').count(), { timeout: 10_000 }).toBe(0);
    expect(pageErrors).toEqual([]);
  }, 30_000);

  it("stays fluid with 1,000 drones streaming at 1 Hz (frame times and long tasks measured)", async () => {
    const s = stack!;
    const N = 1000;
    const WINDOW_MS = 15_000;
    const perfFleet = `perf-${randomUUID().slice(0, 8)}`;
    const secret = resolveAuthSecret()!.secret;
    const relayToken = await signToken(secret, { sub: "perf-relay", role: "relay", fleets: [perfFleet] }, 3600);
    const viewerToken = await signToken(secret, { sub: "perf-operator", role: "operator", fleets: [perfFleet] }, 3600);
    // A second relay with its own fleet of 1,000 simulated drones, against the same edge.
    const relay = spawn(
      process.execPath,
      ["--import", "tsx", resolve(REPO_ROOT, "relay/cli.ts"), "--edge", s.edgeUrl, "--fleet", perfFleet, "--source", "sim", "--drones", String(N), "--rate", "1", "--health-port", "0"],
      { cwd: REPO_ROOT, env: { ...process.env, RELAY_TOKEN: relayToken, NO_COLOR: "1" }, detached: true, stdio: ["ignore", "ignore", "pipe"] },
    );
    const relayErr: string[] = [];
    relay.stderr?.on("data", (b: Buffer) => {
      relayErr.push(String(b));
      if (relayErr.length > 20) relayErr.shift();
    });
    const tiles = await startTileServer();
    const ctx = await browser!.newContext({ viewport: { width: 1480, height: 1000 }, deviceScaleFactor: 1 });
    try {
      // Installed before the page's own script: every animation frame's time, and every long task.
      await ctx.addInitScript(`
        window.__perf = { frames: [], longtasks: [] };
        try {
          new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__perf.longtasks.push([e.startTime, e.duration]); })
            .observe({ type: "longtask", buffered: true });
        } catch {}
        let last = 0;
        const loop = (t) => { if (last) window.__perf.frames.push([t, t - last]); last = t; requestAnimationFrame(loop); };
        requestAnimationFrame(loop);
      `);
      // Control: an empty page with the same frame loop, now, on this machine: what the frame
      // times of a page that does nothing look like under the current load.
      const blank = await ctx.newPage();
      await blank.goto("data:text/html,<title>blank</title>");
      await new Promise((r) => setTimeout(r, 5_000));
      const blankFrames = ((await blank.evaluate("window.__perf.frames")) as [number, number][]).map(([, d]) => d).sort((a, b) => a - b);
      await blank.close();
      const p = await ctx.newPage();
      p.on("pageerror", (err) => pageErrors.push(err.message));
      const loadStart = Date.now();
      await p.goto(`${s.edgeUrl}/?token=${viewerToken}&tiles=${encodeURIComponent(tiles.template)}&tiles_attribution=Test%20tiles`);
      await p.waitForFunction((n) => document.querySelector("#drone-count")?.textContent === `${n} drones`, N, { timeout: 150_000, polling: 500 });
      const loadedMs = Date.now() - loadStart;
      const seqBefore = await tableRows(p);
      // A trace of the window too: the main thread's CPU time tells the page's own cost apart
      // from time it spent waiting for a core on this shared machine.
      const cdp = await ctx.newCDPSession(p);
      const trace: TraceEvent[] = [];
      cdp.on("Tracing.dataCollected", (e) => {
        for (const v of e.value) if (isTraceEvent(v)) trace.push(v);
      });
      const traced = new Promise((r) => cdp.once("Tracing.tracingComplete", r));
      await cdp.send("Tracing.start", { categories: "toplevel,devtools.timeline,disabled-by-default-devtools.timeline", transferMode: "ReportEvents" });
      // DASHBOARD_PROFILE=1: a CPU profile of the window as well (test-artifacts/dashboard-1000.cpuprofile,
      // opens in Chrome DevTools' Performance panel), to find what the long tasks run.
      const profile = process.env.DASHBOARD_PROFILE === "1";
      if (profile) {
        await cdp.send("Profiler.enable");
        await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
        await cdp.send("Profiler.start");
      }
      const t0 = (await p.evaluate("performance.now()")) as number;
      const loadBefore = loadavg()[0]!;
      // The measurement window: the page renders what streams in meanwhile.
      await new Promise((r) => setTimeout(r, WINDOW_MS));
      const raw = (await p.evaluate(`({ frames: window.__perf.frames, longtasks: window.__perf.longtasks, now: performance.now() })`)) as {
        frames: [number, number][];
        longtasks: [number, number][];
        now: number;
      };
      if (profile) {
        const { profile: cpu } = (await cdp.send("Profiler.stop")) as { profile: unknown };
        writeFileSync(resolve(ARTIFACTS, "dashboard-1000.cpuprofile"), JSON.stringify(cpu));
      }
      await cdp.send("Tracing.end");
      await traced;
      if (profile) writeFileSync(resolve(ARTIFACTS, "dashboard-1000.trace.json"), JSON.stringify({ traceEvents: trace }));
      const rows = await tableRows(p);
      const stats = await mapStats(p);
      await p.locator("#map").screenshot({ path: resolve(ARTIFACTS, "dashboard-1000-drones.png") });
      // Scrolling the table builds the rows now in view.
      await p.$eval(".table-scroll", (el) => ((el as unknown as { scrollTop: number }).scrollTop = 1e6));
      await p.waitForSelector(`#drone-table tr[data-drone-id="drone_${N - 1}"]`, { timeout: 5_000 });

      const deltas = raw.frames.filter(([t]) => t >= t0).map(([, d]) => d).sort((a, b) => a - b);
      const tasks = raw.longtasks.filter(([t]) => t >= t0).map(([, d]) => d);
      const windowS = (raw.now - t0) / 1000;
      const report = {
        drones: N,
        rate_hz: 1,
        window_s: Number(windowS.toFixed(1)),
        page_ready_s: Number((loadedMs / 1000).toFixed(1)),
        frames: deltas.length,
        fps: Number((deltas.length / windowS).toFixed(1)),
        frame_ms: { p50: pct(deltas, 50), p95: pct(deltas, 95), p99: pct(deltas, 99), max: deltas.at(-1) ?? NaN },
        long_tasks: {
          count: tasks.length,
          total_ms: Math.round(tasks.reduce((a, b) => a + b, 0)),
          max_ms: Math.round(Math.max(0, ...tasks)),
          over_100ms: tasks.filter((d) => d > 100).length,
        },
        targets: { frame_p99_ms: 50, long_task_max_ms: 100 },
        blank_page_now: { fps: Number((blankFrames.length / 5).toFixed(1)), frame_p50_ms: Number(pct(blankFrames, 50).toFixed(1)), frame_p99_ms: Number(pct(blankFrames, 99).toFixed(1)), frame_max_ms: Number((blankFrames.at(-1) ?? NaN).toFixed(1)) },
        main_thread: (() => {
          const m = mainThreadCpu(trace);
          return { ...m, cpu_share_pct: Number(((m.cpu_ms / (windowS * 1000)) * 100).toFixed(1)) };
        })(),
        table_rows_in_dom: rows.length,
        map: { drones_drawn: Number(stats.drones), labels: Number(stats.labels), clusters: Number(stats.clusters), zoom: Number(stats.zoom) },
        machine: { cpus: cpus().length, loadavg_1m: Number(loadavg()[0]!.toFixed(2)), loadavg_1m_before: Number(loadBefore.toFixed(2)) },
        measured_at: new Date().toISOString(),
      };
      for (const k of ["p50", "p95", "p99", "max"] as const) report.frame_ms[k] = Number(report.frame_ms[k].toFixed(1));
      writeFileSync(resolve(ARTIFACTS, "dashboard-perf.json"), `${JSON.stringify(report, null, 2)}\n`);
      console.log(`dashboard at ${N} drones: ${JSON.stringify(report)}`);

      // Data kept flowing into the rows in view.
      const before = new Map(seqBefore.map((r) => [r.id, r.seq]));
      expect(rows.some((r) => before.has(r.id) && r.seq > before.get(r.id)!)).toBe(true);
      // Only the rows in view (and a few either side) exist.
      expect(rows.length).toBeLessThan(80);
      // Labels for a few, not for a thousand.
      expect(report.map.labels).toBeLessThanOrEqual(30);
      // The targets (frame p99 ≤ 50 ms, no long task over 100 ms) are reported above, not asserted:
      // this machine is shared (2 cores, the edge, the relay and other sessions' tests beside the
      // browser), and wall-clock times there mostly measure the wait for a core. What is asserted:
      // the page's own cost, in CPU time, which load does not inflate (a task the page makes takes
      // under 100 ms of CPU, an animation frame's script under 50 ms at p99) ...
      expect(report.main_thread.page_task_cpu_max_ms).toBeLessThan(100);
      expect(report.main_thread.frame_cpu_ms.p99).toBeLessThan(50);
      expect(report.fps).toBeGreaterThan(5);
      expect(report.frame_ms.p50).toBeLessThan(100);
      // ... and, unless the machine was overloaded (a load average above twice its cores before or
      // after the window, or the control page's own frames late), the wall-clock bounds that hold
      // on a shared machine: no long task over 250 ms and frame p99 under 100 ms. (At a load of
      // 11 on 2 cores a task of 15 ms CPU took 170 ms of wall time: that measures the machine.)
      const load = Math.max(report.machine.loadavg_1m, report.machine.loadavg_1m_before);
      const quiet = load <= 2 * report.machine.cpus && report.blank_page_now.frame_p99_ms <= 20;
      console.log(`machine ${quiet ? "quiet enough: wall-clock bounds asserted" : `busy (load ${load}, blank page frame p99 ${report.blank_page_now.frame_p99_ms} ms): wall-clock bounds not asserted`}`);
      if (quiet) {
        expect(report.long_tasks.max_ms).toBeLessThan(250);
        expect(report.frame_ms.p99).toBeLessThan(100);
      }
      expect(report.long_tasks.max_ms).toBeLessThan(3_000);
    } finally {
      await ctx.close().catch(() => {});
      await tiles.close();
      await killProcessGroup(relay);
      if (relayErr.length) console.log(`perf relay stderr (last): ${relayErr.join("").slice(-600)}`);
    }
  }, 300_000);
});
