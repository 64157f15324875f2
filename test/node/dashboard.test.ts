/**
 * The operator dashboard in a real browser (Debian's chromium driven by playwright-core) against
 * the real stack: wrangler dev serving the page and the edge, the relay with 5 simulated drones,
 * Postgres through the local proxy. Screenshots go to test-artifacts/ (gitignored).
 *
 * Covers: sign-in through the link `npm start` prints (token stripped from the address bar), every
 * drone in the table and moving, a waypoint set by clicking the map (ack and mission_update), a
 * geofence rejection with its rule and clickable suggestions, a viewer without controls, and the
 * relay-offline banner when the relay goes away.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page, type WebSocketRoute } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../scripts/dev-vars";
import { startStack, type Stack } from "../../scripts/stack";
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

/** The drone table as data. */
async function tableRows(page: Page): Promise<RowData[]> {
  return page.$$eval("#drone-table tbody tr", (trs) =>
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
        const rows = [...document.querySelectorAll("#drone-table tbody tr")];
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
          [...document.querySelectorAll("#drone-table tbody tr")].every((tr) => {
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
      await vp.click("#drone-table tbody tr >> nth=0");
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
});
