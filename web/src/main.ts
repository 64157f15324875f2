/**
 * The operator dashboard: sign in, then one fleet's live picture over the edge WebSocket (map,
 * drone table, analytics, alerts, coordination) and, for operators and admins, commands.
 *
 * Data flow: server frames → FleetModel / CommandLog (plain data) → views, redrawn at most once
 * per animation frame; REST for what a socket does not carry (config, missions, coordination
 * history, command audit, hourly analytics, insights, alert history).
 */
import "uplot/dist/uPlot.min.css";
import "./styles.css";
import { FleetConfig } from "../../edge/domain/fleet-config";
import { CommandsBody, CoordinationBody, MissionsBody, StatusBody, type ServerMessage } from "../../edge/protocol";
import { AlertsFeed, HourlyCharts, InsightsList, LiveCards } from "./analytics";
import { Api } from "./api";
import { choiceFromQuery, effectiveBaseMap, makeBaseMap, NO_BASEMAP, parseChoice, serializeChoice, templateProblem, type BaseMap, type BaseMapChoice } from "./basemap";
import { CommandCenter, initialUiState } from "./commands";
import { FleetSocket, type ConnState } from "./connection";
import { closeAction } from "./frames";
import { byId, formatAge, formatClock, h, setClass, setText } from "./dom";
import { UNKNOWN_STATE_COLOR } from "./drone-state";
import { MapView, STATUS_COLORS, type MapScene } from "./map";
import { CommandLog, FleetModel, isFinal } from "./model";
import { DroneTable } from "./table";
import { canCommand, checkRenewal, isSession, loadSession, saveSignIn, sessionFromIdentity, signOut, type Session, type SessionProblem } from "./session";

/** This browser's base map choice (basemap.ts); absent: the deployment's default. */
const BASEMAP_KEY = "dronefleet.basemap";
/** Where an older page kept a bare tile template. */
const OLD_TILE_KEY = "dronefleet.tileTemplate";
/** Why the last session ended, shown on the sign-in form after the reload. */
const PROBLEM_KEY = "dronefleet.signin-problem";
/** When the page last reloaded to renew a sign-in through the identity provider (a second expiry
 * right after one means the provider gives no fresh session: sign-in form, not a reload loop). */
const RENEW_RELOAD_KEY = "dronefleet.renew-reload";

function showSignIn(p: SessionProblem): void {
  byId("app").hidden = true;
  byId("signin").hidden = false;
  const token = byId<HTMLTextAreaElement>("signin-token");
  const fleet = byId<HTMLInputElement>("signin-fleet");
  if (p.token) token.value = p.token;
  setText(byId("signin-error"), p.problem);
  byId<HTMLFormElement>("signin-form").onsubmit = (ev) => {
    ev.preventDefault();
    saveSignIn(token.value, fleet.value);
    const s = loadSession();
    if (isSession(s)) {
      byId("signin").hidden = true;
      runDashboard(s);
    } else {
      setText(byId("signin-error"), s.problem || "Paste a token.");
    }
  };
  token.focus();
}

/** The deployment's tile server: meta tags that build-web.ts fills from DASHBOARD_TILE_URL,
 * DASHBOARD_TILE_ATTRIBUTION and DASHBOARD_TILE_MAX_ZOOM (or a server rewriting index.html). */
function deploymentBaseMap(): BaseMap {
  const meta = (name: string) => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content ?? "";
  return makeBaseMap(meta("dronefleet:tile-url"), meta("dronefleet:tile-attribution"), meta("dronefleet:tile-max-zoom"));
}

/** This browser's choice: from the address (`?tiles=…`, then remembered and taken out of the
 * address bar), else from localStorage. */
function loadBaseMapChoice(): BaseMapChoice | null {
  const url = new URL(location.href);
  const fromQuery = choiceFromQuery(url.searchParams);
  if (fromQuery) {
    localStorage.setItem(BASEMAP_KEY, serializeChoice(fromQuery));
    for (const k of ["tiles", "tiles_attribution", "tiles_max_zoom"]) url.searchParams.delete(k);
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    return fromQuery;
  }
  const old = localStorage.getItem(OLD_TILE_KEY);
  if (old !== null) {
    localStorage.removeItem(OLD_TILE_KEY);
    const b = makeBaseMap(old);
    if (b.url) localStorage.setItem(BASEMAP_KEY, serializeChoice({ mode: "custom", basemap: b }));
  }
  return parseChoice(localStorage.getItem(BASEMAP_KEY));
}

function toast(text: string, tone: "info" | "bad" = "info"): void {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", class: "toasts", "aria-live": "polite" });
    document.body.append(box);
  }
  const t = h("div", { class: `toast ${tone}` }, text);
  box.append(t);
  while (box.children.length > 4) box.firstElementChild?.remove();
  setTimeout(() => t.remove(), 6_000);
}

function runDashboard(session: Session): void {
  const api = new Api(session.token, session.fleet);
  const model = new FleetModel();
  const log = new CommandLog();
  const ui = initialUiState();
  const commanding = canCommand(session.claims);
  let config: FleetConfig | null = null;
  const deploymentTiles = deploymentBaseMap();
  let basemapChoice = loadBaseMapChoice();
  let showTiles = true;
  /** The edge said this page reads too slowly and gets only the latest sample per drone. */
  let lag: { since: number; conflated: number; closeAfterMs: number | null } | null = null;
  /** Telemetry rounds a second this page asks for (max_rate_hz); undefined: every update. Lowered
   * each time the edge closes the socket for reading too slowly (4002). */
  let rateHz: number | undefined;
  /** The last 4002: shown in the banner for a while. */
  let slowedAt: number | null = null;
  /** The token expired (4001) and a new one is being obtained; the view stays, frozen. */
  let renewing: { since: number; message: string } | null = null;
  // Render scheduling (see render()); declared first because the views ask for frames as soon
  // as they are built.
  let raf = 0;
  let lastTable = 0;
  let lastCards = 0;
  let tableTimer: ReturnType<typeof setTimeout> | undefined;
  let showTrails = true;

  byId("app").hidden = false;
  document.body.classList.add(`role-${session.claims.role}`);
  // A viewer gets no command controls at all, not hidden ones.
  if (!commanding) byId("land-dialog").remove();
  document.title = `${session.fleet} · DroneFleet`;
  setText(byId("fleet-name"), session.fleet);
  const fleets = session.claims.fleets;
  if (Array.isArray(fleets) && fleets.length > 1) {
    // The token grants several fleets: switch between them (one socket per page).
    const pick = h("select", { class: "fleet-pick", "aria-label": "Fleet" }, ...fleets.map((f) => h("option", { value: f, selected: f === session.fleet }, f)));
    pick.addEventListener("change", () => {
      socket.stop();
      saveSignIn(session.token, pick.value);
      location.reload();
    });
    byId("fleet-name").replaceChildren(pick);
  }
  const showWho = () => {
    setText(byId("who"), `${session.claims.sub} · ${session.claims.role}`);
    byId("who").title = `token valid until ${new Date(session.claims.exp * 1000).toLocaleString()}`;
  };
  showWho();
  byId("map-legend").append(
    ...Object.entries(STATUS_COLORS).map(([s, c]) => h("span", { class: "legend-item" }, h("i", { style: `background:${c}` }), s.replace(/_/g, " "))),
    h("span", { class: "legend-item", title: "The source reports no state (armed, status) for these drones: airborne or not is inferred from altitude and motion" }, h("i", { style: `background:${UNKNOWN_STATE_COLOR}` }), "state unknown"),
  );

  const select = (id: string | null) => {
    ui.selected = id;
    commands.setMode(ui.mode); // refresh the hint, which names the drone
    commands.renderMission();
    if (id) table.reveal(id);
    scheduleRender();
  };

  const map = new MapView(
    byId("map"),
    (c) => commands.mapClick(c),
    (text) => setText(byId("map-cursor"), text),
    () => scheduleRender(),
  );
  /** Set when the table must redraw in the coming frame (scrolled, filtered), not 200 ms later. */
  let tableNow = false;
  const table = new DroneTable(
    byId("table"),
    (id) => select(id),
    () => {
      tableNow = true;
      scheduleRender();
    },
  );
  const cards = new LiveCards(byId("kpis"));
  const alerts = new AlertsFeed(
    byId("alerts"),
    (id) => {
      select(id);
      const d = model.drones.get(id);
      if (d) map.centerOn(d.sample);
    },
    (id) => model.events.get(id),
    (id) => {
      // The event's entry in the Coordination panel (where its overrides are), and its first drone.
      const li = document.querySelector<HTMLElement>(`#coordination li[data-event-id="${CSS.escape(id)}"]`);
      if (li) {
        li.scrollIntoView({ block: "nearest" });
        li.classList.add("highlight");
        setTimeout(() => li.classList.remove("highlight"), 2_000);
      } else toast(`Event ${id} is not in the list any more (it ended)`, "info");
      const first = model.events.get(id)?.drone_ids[0];
      if (first) select(first);
    },
  );
  /** Events the alerts were last drawn with: an alert names its event's drones once it is known. */
  let alertsEventsVersion = -1;
  const charts = new HourlyCharts(byId("charts"), byId("hourly-status"));
  const insights = new InsightsList(byId("insights"));

  const socket = new FleetSocket({
    url: () => api.socketUrl(),
    onFrame,
    onOpen,
    onState: renderConn,
    checkAuth: async () => {
      const r = await api.get("/status", StatusBody, 5_000);
      if (!r.ok && (r.status === 401 || r.status === 403)) return { ok: false, message: r.message };
      return { ok: true };
    },
    onClosed: (code, reason) => {
      const a = closeAction(code, rateHz);
      switch (a.kind) {
        case "renew":
          startRenewal(`The edge closed the connection because the token expired (${code}${reason ? ` ${reason}` : ""}).`);
          return "hold";
        case "slow_down":
          rateHz = a.maxRateHz;
          slowedAt = Date.now();
          toast(`This dashboard read telemetry too slowly and was disconnected (${code}); reconnecting at ${a.maxRateHz} update${a.maxRateHz === 1 ? "" : "s"} per drone per second.`, "bad");
          return "retry";
        case "retry":
          return "retry";
        default: {
          const never: never = a;
          return never;
        }
      }
    },
  });

  const commands = new CommandCenter({
    canCommand: commanding,
    model,
    log,
    ui,
    send: (msg) => socket.send(msg),
    changed: () => scheduleRender(),
    select: (id) => select(id),
    center: (p) => map.centerOn(p),
    now: () => Date.now(),
  });

  // ---------------------------------------------------------------- frames

  function onFrame(msg: ServerMessage): void {
    const now = Date.now();
    switch (msg.type) {
      case "fleet_status":
        model.applyStatus(msg, now);
        break;
      case "telemetry": {
        const { type: _t, ...sample } = msg;
        model.applySample(sample, now);
        break;
      }
      case "telemetry_batch":
        for (const s of msg.updates) model.applySample(s, now);
        break;
      case "link_status":
        model.applyLink(msg, now);
        if (msg.scope === "relay") toast(msg.state === "up" ? "Relay connected" : "Relay disconnected", msg.state === "up" ? "info" : "bad");
        break;
      case "mission_update":
        model.applyMissionUpdate(msg, now);
        break;
      case "coordination_event":
        model.applyEvent(msg.event);
        break;
      case "command_status":
        log.applyStatus(msg, now);
        if (ui.pendingTarget?.command_id === msg.command_id && msg.status !== "sent" && msg.status !== "received") ui.pendingTarget = null;
        break;
      case "waypoint_modification_response":
      case "mission_assignment_response":
      case "emergency_land_response":
      case "coordination_override_response":
      case "hold_response":
        commands.onResponse(msg, log.applyResponse(msg, now));
        break;
      case "analytics_live":
        cards.applyLive(msg, now);
        break;
      case "alert":
        alerts.apply(msg);
        if (msg.state === "raised") alertToast(msg.alert.message, msg.alert.severity === "critical" ? "bad" : "info");
        break;
      case "alerts": {
        // Many at once (a relay gone): into the list, and one toast that says how many.
        for (const alert of msg.raised) alerts.apply({ type: "alert", state: "raised", alert });
        for (const alert of msg.cleared) alerts.apply({ type: "alert", state: "cleared", alert });
        if (msg.raised.length) {
          const critical = msg.raised.filter((a) => a.severity === "critical").length;
          const kinds = [...new Set(msg.raised.map((a) => a.kind.replace(/_/g, " ")))].join(", ");
          alertToast(`${msg.raised.length} alerts raised (${critical} critical): ${kinds}`, critical ? "bad" : "info", msg.raised.length);
        }
        break;
      }
      case "error":
        // token_expired comes just before the 4001 close, which opens the renewal form.
        if (msg.code !== "token_expired") toast(`${msg.code}: ${msg.message}`, "bad");
        break;
      case "flow":
        // Flow control: every frame before this one has been handled (frames only update state;
        // drawing waits for the next animation frame), so answer at once. A page whose main
        // thread is stuck answers late, and the edge sends it latest-wins telemetry instead.
        socket.send({ type: "flow_ack", seq: msg.seq });
        return;
      case "lagging":
        lag = msg.state === "lagging" ? { since: now, conflated: msg.conflated, closeAfterMs: msg.close_after_ms ?? null } : null;
        break;
      case "pong":
      case "subscribed":
        break;
      default: {
        const never: never = msg;
        void never;
      }
    }
    scheduleRender();
  }

  /** At most 3 alert toasts in 5 s; the rest are summed up in one (a relay coming back at fleet
   * scale raises dozens at once, and the Alerts list holds them all). `alerts`: how many alerts
   * the toast stands for (an `alerts` frame's summary stands for all of its alerts). */
  const toastWindow = { start: 0, shown: 0, more: 0 };
  function alertToast(text: string, tone: "info" | "bad", alerts = 1): void {
    const now = Date.now();
    if (now - toastWindow.start > 5_000) Object.assign(toastWindow, { start: now, shown: 0, more: 0 });
    if (toastWindow.shown < 3) {
      toastWindow.shown++;
      toast(text, tone);
      return;
    }
    const first = toastWindow.more === 0;
    toastWindow.more += alerts;
    if (first) {
      setTimeout(() => {
        if (toastWindow.more) toast(`${toastWindow.more} more alert${toastWindow.more === 1 ? "" : "s"}: see the Alerts list`, "bad");
        toastWindow.more = 0;
      }, 5_000 - (now - toastWindow.start));
    }
  }

  function onOpen(reconnect: boolean): void {
    lag = null; // a new socket starts in step
    socket.send({ type: "subscribe_telemetry", request_id: "subscribe", drone_ids: "all", batch: true, ...(rateHz !== undefined ? { max_rate_hz: rateHz } : {}) });
    // After an outage, catch up with what frames would have said.
    if (reconnect) void loadSideData();
  }

  // ---------------------------------------------------------------- REST

  async function loadConfig(): Promise<void> {
    const r = await api.get("/config", FleetConfig);
    if (r.ok) {
      config = r.data;
      commands.configLoaded(r.data);
      scheduleRender();
      return;
    }
    if (r.status === 401 || r.status === 403) return deny(r.message);
    toast(`Fleet configuration: ${r.message}; retrying`, "bad");
    setTimeout(() => void loadConfig(), 5_000);
  }

  async function loadSideData(): Promise<void> {
    const now = Date.now();
    const [missions, coordination, audit] = await Promise.all([
      api.get("/missions?limit=200", MissionsBody),
      api.get("/coordination?limit=50", CoordinationBody),
      api.get("/commands?limit=50", CommandsBody),
    ]);
    if (missions.ok) model.setMissionPlans(missions.data.missions, now);
    if (coordination.ok) for (const e of coordination.data.events.slice().reverse()) model.applyEvent(e);
    if (audit.ok) {
      log.mergeAudit(audit.data.commands, now);
      model.setWaypointPlansFromAudit(audit.data.commands, now);
    }
    await alerts.load(api, cards);
    scheduleRender();
  }

  async function loadAnalytics(): Promise<void> {
    await Promise.all([charts.load(api), insights.load(api)]);
  }

  // ---------------------------------------------------------------- token renewal (4001)

  /**
   * The token ran out while the page was open. Signed in through the identity provider (no token
   * of the page's own): ask the edge again who this is (GET /v1/me, with the provider's cookie);
   * a fresh session reconnects at once, none means the provider's own session ended too, and a
   * reload takes the person through its sign-in and back. With a pasted token: ask for a new one,
   * keeping everything on screen.
   */
  function startRenewal(message: string): void {
    if (renewing) return;
    renewing = { since: Date.now(), message };
    scheduleRender();
    if (!session.token) {
      void renewIdentity();
      return;
    }
    const dlg = byId<HTMLDialogElement>("renew-dialog");
    setText(byId("renew-message"), `${message} Your token was valid until ${new Date(session.claims.exp * 1000).toLocaleString()}. Paste a new one to continue; everything on screen stays as it is (frozen until then).`);
    setText(byId("renew-error"), "");
    byId<HTMLTextAreaElement>("renew-token").value = "";
    if (!dlg.open) dlg.show();
    byId<HTMLTextAreaElement>("renew-token").focus();
  }

  async function renewIdentity(): Promise<void> {
    const s = await sessionFromIdentity();
    if (s && isSession(s) && s.fleet === session.fleet && s.claims.exp * 1000 > Date.now()) {
      session.claims = s.claims;
      showWho();
      finishRenewal("Signed in again; reconnected.");
      return;
    }
    const last = Number(sessionStorage.getItem(RENEW_RELOAD_KEY) ?? 0);
    if (Date.now() - last < 120_000) return deny("the sign-in expired again right after it was renewed");
    sessionStorage.setItem(RENEW_RELOAD_KEY, String(Date.now()));
    socket.stop();
    location.reload();
  }

  function finishRenewal(note: string): void {
    renewing = null;
    const dlg = byId<HTMLDialogElement>("renew-dialog");
    if (dlg.open) dlg.close();
    toast(note);
    socket.resume();
    scheduleRender();
  }

  byId<HTMLFormElement>("renew-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const action = (ev.submitter as HTMLButtonElement | null)?.value;
    if (action === "signout") {
      socket.stop();
      signOut();
      location.reload();
      return;
    }
    const token = byId<HTMLTextAreaElement>("renew-token").value.trim();
    const r = checkRenewal(token, session.fleet, session.claims.role);
    if (!r.ok) {
      setText(byId("renew-error"), r.problem);
      return;
    }
    saveSignIn(token, session.fleet);
    if (r.roleChanged) {
      // The controls on the page were built for the old role.
      socket.stop();
      location.reload();
      return;
    }
    session.token = token;
    session.claims = r.claims;
    api.setToken(token);
    showWho();
    finishRenewal(`New token accepted (valid until ${new Date(r.claims.exp * 1000).toLocaleString()}); reconnected.`);
  });

  /** The edge refused the token (expired, revoked secret, wrong fleet): back to sign-in. */
  function deny(message: string): void {
    socket.stop();
    signOut();
    sessionStorage.setItem(PROBLEM_KEY, `The edge refused the token: ${message}`);
    location.reload();
  }

  // ---------------------------------------------------------------- rendering

  function renderConn(s: ConnState): void {
    const pill = byId("conn");
    let text: string;
    let tone: string;
    switch (s.kind) {
      case "open":
        text = "● live";
        tone = "ok";
        break;
      case "connecting":
        text = s.attempt ? `connecting (attempt ${s.attempt + 1})…` : "connecting…";
        tone = "warn";
        break;
      case "waiting":
        text = `reconnecting in ${Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000))} s`;
        tone = "warn";
        pill.title = `${s.reason}; attempt ${s.attempt}`;
        break;
      case "denied":
        text = "token refused";
        tone = "bad";
        // An expired token (the socket dropped and could not come back with it) is renewed in
        // place; anything else (another fleet, a revoked secret) goes back to sign-in.
        if (!session.token || session.claims.exp * 1000 <= Date.now() + 30_000) startRenewal(`The edge refused the token (${s.message}).`);
        else deny(s.message);
        break;
      case "held":
        text = "token expired";
        tone = "bad";
        pill.title = s.reason;
        break;
      case "stopped":
        text = "signed out";
        tone = "bad";
        break;
      default: {
        const never: never = s;
        return void never;
      }
    }
    setText(pill, text);
    pill.dataset.state = s.kind;
    for (const t of ["ok", "warn", "bad"]) setClass(pill, t, t === tone);
    scheduleRender();
  }

  function renderBanner(now: number): void {
    const banner = byId("relay-banner");
    const relay = byId("relay");
    const conn = socket.state;
    let text = "";
    if (conn.kind === "waiting" || (conn.kind === "connecting" && conn.attempt > 0)) {
      text = `Connection to the edge lost — the data below is frozen. ${conn.kind === "waiting" ? `Reconnecting in ${Math.max(0, Math.ceil((conn.retryAt - now) / 1000))} s (attempt ${conn.attempt}).` : "Reconnecting…"}`;
      banner.dataset.kind = "edge";
    } else if (renewing) {
      text = `The token expired — the data below is frozen since ${formatClock(renewing.since)}. ${session.token ? "Paste a new token to continue." : "Renewing the sign-in…"}`;
      banner.dataset.kind = "token";
    } else if (lag) {
      text = `This dashboard fell behind the telemetry stream: it shows each drone's latest position (${lag.conflated} older samples skipped)${lag.closeAfterMs !== null ? `; the edge disconnects it if it is still behind in ${Math.max(0, Math.ceil((lag.since + lag.closeAfterMs - now) / 1000))} s` : ""}.`;
      banner.dataset.kind = "lag";
    } else if (model.relayConnected === false) {
      text = `Relay offline since ${formatClock(model.relayChangedAt)} (${formatAge(now - model.relayChangedAt)}) — no telemetry from the site; commands are refused (relay_offline) until it reconnects.`;
      banner.dataset.kind = "relay";
    } else if (slowedAt !== null && now - slowedAt < 60_000 && conn.kind === "open") {
      text = `The edge disconnected this dashboard for reading telemetry too slowly (4002); it now asks for at most ${rateHz} update${rateHz === 1 ? "" : "s"} per drone per second (each drone's latest position).`;
      banner.dataset.kind = "slow";
    }
    banner.hidden = !text;
    setText(banner, text);
    setText(relay, model.relayConnected === null ? "relay …" : model.relayConnected ? "relay online" : "relay OFFLINE");
    relay.dataset.state = model.relayConnected === null ? "unknown" : model.relayConnected ? "up" : "down";
    setClass(relay, "ok", model.relayConnected === true);
    setClass(relay, "bad", model.relayConnected === false);
  }

  /** The tile server in effect now (the map's "tiles" switch can hide it for a while). */
  function basemap(): BaseMap {
    const b = effectiveBaseMap(deploymentTiles, basemapChoice);
    return showTiles ? b : NO_BASEMAP;
  }

  function renderTilesToggle(): void {
    const b = effectiveBaseMap(deploymentTiles, basemapChoice);
    byId("tiles-toggle").hidden = !b.url;
    byId("tiles-toggle").title = b.url ? `Base map tiles from ${b.url}` : "";
  }

  // Frames only change state; drawing happens here, at most once per animation frame, from the
  // latest state, however many frames arrived in between.
  function scheduleRender(): void {
    if (!raf) raf = requestAnimationFrame(render);
  }

  function render(): void {
    raf = 0;
    const now = Date.now();
    // A sent waypoint's marker goes once its command is final, however that was learnt.
    const pending = ui.pendingTarget && log.items.get(ui.pendingTarget.command_id);
    if (pending && isFinal(pending.status)) ui.pendingTarget = null;
    const scene: MapScene = {
      config,
      model,
      selected: ui.selected,
      mode: ui.mode,
      draft: ui.draft,
      pendingTarget: ui.pendingTarget,
      rejected: ui.rejected ? { target: ui.rejected.target, suggestions: ui.rejected.suggestions } : null,
      showTrails,
      basemap: basemap(),
      now,
    };
    // Only a crowded map is heavy enough to give the other views a frame of their own.
    const mapDrew = map.draw(scene) && map.crowdedView;
    commands.renderSelected(now);
    // The lists rebuilt from data (table cells, the command ledger, coordination events, alerts,
    // the cards) change with nearly every frame at 1,000 drones, where collision avoidance alone
    // sends several commands a second: at most 4–5 times a second each (the table at once on a
    // scroll), and a timer makes sure the last change is drawn.
    // One heavy view per animation frame: in a frame where the (crowded) map drew, the table and
    // the lists wait for the next one, so no frame pays for all of them at once (at 1,000 drones
    // each costs milliseconds of script, layout and paint).
    let skipped = false;
    let deferred = false;
    let drewTable = false;
    if (tableNow || (now - lastTable >= 200 && !mapDrew)) {
      drewTable = true;
      tableNow = false;
      lastTable = now;
      table.render(model, config, ui.selected, now);
      setText(byId("drone-count"), `${model.drones.size} drone${model.drones.size === 1 ? "" : "s"}`);
    } else {
      skipped = true;
      deferred ||= now - lastTable >= 200;
    }
    if (now - lastCards >= 250 && !mapDrew && !drewTable) {
      lastCards = now;
      commands.renderLedger();
      commands.renderEvents();
      if (alertsEventsVersion !== model.eventsVersion) {
        alertsEventsVersion = model.eventsVersion;
        alerts.eventsChanged();
      }
      alerts.render();
      cards.render(model, now);
    } else {
      skipped = true;
      deferred ||= now - lastCards >= 250;
    }
    if (deferred) scheduleRender();
    if (skipped && !tableTimer) {
      tableTimer = setTimeout(() => {
        tableTimer = undefined;
        scheduleRender();
      }, 260 - Math.min(now - lastTable, now - lastCards, 250));
    }
    renderBanner(now);
  }

  // Ages, staleness and countdowns move without frames.
  setInterval(() => {
    model.pruneTrails(Date.now());
    if (socket.state.kind === "waiting") renderConn(socket.state);
    scheduleRender();
  }, 1_000);
  // Hourly data changes once an hour; insights with it.
  setInterval(() => void loadAnalytics(), 5 * 60_000);
  // The configuration has no change frame; an admin's edit shows within a minute.
  setInterval(() => void loadConfig(), 60_000);

  // ---------------------------------------------------------------- controls

  byId("signout").addEventListener("click", () => {
    socket.stop();
    signOut();
    location.reload();
  });
  byId("zoom-in").addEventListener("click", () => map.zoomBy(1.5));
  byId("zoom-out").addEventListener("click", () => map.zoomBy(1 / 1.5));
  byId("fit-fleet").addEventListener("click", () => map.fitFleet());
  byId("fit-fence").addEventListener("click", () => map.fitGeofence());
  byId<HTMLInputElement>("trails").addEventListener("change", (ev) => {
    showTrails = (ev.target as HTMLInputElement).checked;
    scheduleRender();
  });
  byId<HTMLInputElement>("tiles").addEventListener("change", (ev) => {
    showTiles = (ev.target as HTMLInputElement).checked;
    scheduleRender();
  });
  byId("hourly-refresh").addEventListener("click", () => void loadAnalytics());
  const settings = byId<HTMLDialogElement>("settings-dialog");
  const tileInput = byId<HTMLInputElement>("tile-url");
  const attributionInput = byId<HTMLInputElement>("tile-attribution");
  const maxZoomInput = byId<HTMLInputElement>("tile-max-zoom");
  byId("settings-open").addEventListener("click", () => {
    const b = effectiveBaseMap(deploymentTiles, basemapChoice);
    tileInput.value = b.url;
    attributionInput.value = b.attribution;
    maxZoomInput.value = b.url ? String(b.maxZoom) : "";
    setText(
      byId("basemap-default"),
      deploymentTiles.url ? `This deployment's default: ${deploymentTiles.url}${deploymentTiles.attribution ? ` (${deploymentTiles.attribution})` : ""}.` : "This deployment sets no tile server.",
    );
    settings.returnValue = "";
    settings.showModal();
  });
  settings.addEventListener("close", () => {
    const action = settings.returnValue;
    if (action === "default") {
      basemapChoice = null;
      localStorage.removeItem(BASEMAP_KEY);
    } else if (action === "save") {
      const v = tileInput.value.trim();
      const problem = v ? templateProblem(v) : null;
      if (problem) {
        toast(`Tile URL ${problem}`, "bad");
        return;
      }
      // An empty URL means "no tiles here", even where the deployment has a default.
      basemapChoice = v ? { mode: "custom", basemap: makeBaseMap(v, attributionInput.value, maxZoomInput.value) } : { mode: "off" };
      localStorage.setItem(BASEMAP_KEY, serializeChoice(basemapChoice));
    } else {
      return;
    }
    showTiles = true;
    byId<HTMLInputElement>("tiles").checked = true;
    renderTilesToggle();
    scheduleRender();
  });
  renderTilesToggle();

  socket.start();
  void loadConfig();
  void loadSideData();
  void loadAnalytics();
  commands.renderLedger(true);
  commands.renderResult();
  scheduleRender();
}

async function main(): Promise<void> {
  const s = loadSession();
  if (isSession(s)) {
    runDashboard(s);
    return;
  }
  const carried = sessionStorage.getItem(PROBLEM_KEY);
  sessionStorage.removeItem(PROBLEM_KEY);
  // No token of our own: behind Cloudflare Access (or another provider) the edge knows the person.
  if (!s.token && !carried) {
    const viaIdentity = await sessionFromIdentity();
    if (viaIdentity && isSession(viaIdentity)) {
      runDashboard(viaIdentity);
      return;
    }
    if (viaIdentity) {
      showSignIn(viaIdentity);
      return;
    }
  }
  showSignIn(carried ? { ...s, problem: carried } : s);
}

void main();
