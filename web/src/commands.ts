/**
 * Operator commands and what the page shows about them: the selected drone's card, the map modes
 * (set a waypoint, plan a mission), emergency land behind a confirmation, the last answer with a
 * rejection's rule and clickable alternatives, the ranked candidates of a mission assignment, the
 * coordination events with their override actions, and the command ledger (every command's state
 * from sent to final).
 *
 * Built only for operators and admins: for a viewer none of the controls exist in the page, and
 * the edge refuses their commands anyway.
 */
import type { FleetConfig } from "../../edge/domain/fleet-config";
import type { LatLon } from "../../edge/domain/geo";
import {
  MISSION_PRIORITIES,
  MissionPriority,
  OVERRIDE_ACTIONS,
  type AlternativeSuggestion,
  type CommandMessage,
  type CommandResponse,
  type CoordinationEventView,
  type DashboardMessage,
  type MissionAssignmentResponse,
  type Waypoint,
} from "../../edge/protocol";
import { byId, formatAge, formatClock, h, keyedList, replaceChildren, setText } from "./dom";
import { stateView } from "./drone-state";
import type { MapClick, MapMode } from "./map";
import { isFinal, type CommandLog, type FleetModel, type TrackedCommand } from "./model";

/** What the operator is doing: shared with the map, which draws it. */
export type UiState = {
  selected: string | null;
  mode: MapMode;
  draft: Waypoint[];
  pendingTarget: (LatLon & { command_id: string }) | null;
  rejected: {
    command_id: string;
    command: string;
    drone_id: string | null;
    target: LatLon;
    rule?: string;
    code?: string;
    message: string;
    suggestions: AlternativeSuggestion[];
  } | null;
  lastAnswer: CommandResponse | null;
  lastAssignment: MissionAssignmentResponse | null;
  altitude: number;
  priority: MissionPriority;
};

export function initialUiState(): UiState {
  return { selected: null, mode: "select", draft: [], pendingTarget: null, rejected: null, lastAnswer: null, lastAssignment: null, altitude: 40, priority: "normal" };
}

export interface CommandDeps {
  canCommand: boolean;
  model: FleetModel;
  log: CommandLog;
  ui: UiState;
  send(msg: DashboardMessage): { ok: true } | { ok: false; problem: string };
  /** Something the map or table shows changed. */
  changed(): void;
  select(id: string | null): void;
  center(p: LatLon): void;
  now(): number;
}

const MAX_DRAFT = 100;
const MAP_CLICK = "set on the map";
const fmt = (p: LatLon) => `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}`;

export class CommandCenter {
  private ledgerVersion = -1;
  /** Waypoints of this page's commands still open, to place a rejection on the map. */
  private readonly sentWaypoints = new Map<string, Waypoint[]>();
  private eventsVersion = -1;
  private readonly modeButtons = new Map<MapMode, HTMLButtonElement>();
  private altInput: HTMLInputElement | null = null;

  constructor(private readonly d: CommandDeps) {
    if (d.canCommand) {
      this.buildTools();
      byId("mission-panel").hidden = false;
      document.addEventListener("keydown", this.onKey);
    }
    this.renderMission();
  }

  // ------------------------------------------------------------------ map interaction

  mapClick(c: MapClick): void {
    const { ui } = this.d;
    if (c.suggestion && this.d.canCommand && ui.rejected) {
      this.useSuggestion(c.suggestion);
      return;
    }
    if (this.d.canCommand && ui.mode === "waypoint" && ui.selected) {
      this.sendWaypoint(ui.selected, { lat: c.lat, lon: c.lon, alt_m: ui.altitude }, MAP_CLICK);
      return;
    }
    if (this.d.canCommand && ui.mode === "mission") {
      if (ui.draft.length >= MAX_DRAFT) return;
      ui.draft.push({ lat: c.lat, lon: c.lon, alt_m: ui.altitude });
      this.renderMission();
      this.d.changed();
      return;
    }
    if (c.droneId) this.d.select(c.droneId);
  }

  setMode(mode: MapMode): void {
    const { ui } = this.d;
    ui.mode = mode;
    for (const [m, b] of this.modeButtons) b.classList.toggle("active", m === mode);
    const hint = byId("map-hint");
    const map = byId("map");
    map.dataset.mode = mode;
    if (mode === "waypoint") {
      hint.hidden = false;
      setText(hint, ui.selected ? `Click the map to send ${ui.selected} to a new waypoint at ${ui.altitude} m · Esc to stop` : "Select a drone first, then click the map to set its waypoint");
    } else if (mode === "mission") {
      hint.hidden = false;
      setText(hint, `Click the map to add mission waypoints at ${ui.altitude} m · Backspace removes the last · Esc to stop`);
    } else {
      hint.hidden = true;
    }
    this.d.changed();
  }

  private readonly onKey = (ev: KeyboardEvent) => {
    const t = ev.target as HTMLElement | null;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
    if (document.querySelector("dialog[open]")) return;
    if (ev.key === "Escape") this.setMode("select");
    else if (ev.key === "w" || ev.key === "W") this.setMode("waypoint");
    else if (ev.key === "m" || ev.key === "M") this.setMode("mission");
    else if (ev.key === "Backspace" && this.d.ui.mode === "mission" && this.d.ui.draft.length) {
      this.d.ui.draft.pop();
      this.renderMission();
      this.d.changed();
    } else return;
    ev.preventDefault();
  };

  private buildTools(): void {
    const tools = byId("map-tools");
    const mode = (m: MapMode, label: string, key: string) => {
      const b = h("button", { type: "button", class: "chip ctl", "data-mode": m, title: `${label} (${key})` }, label);
      b.addEventListener("click", () => this.setMode(this.d.ui.mode === m && m !== "select" ? "select" : m));
      this.modeButtons.set(m, b);
      return b;
    };
    const alt = h("input", { type: "number", id: "altitude", class: "alt-input ctl", min: 0, max: 500, step: 1, value: this.d.ui.altitude, "aria-label": "Waypoint altitude (m)" });
    alt.addEventListener("change", () => {
      const v = Number(alt.value);
      if (Number.isFinite(v)) this.d.ui.altitude = v;
      this.setMode(this.d.ui.mode);
    });
    this.altInput = alt;
    tools.append(mode("select", "Select", "Esc"), mode("waypoint", "Set waypoint", "W"), mode("mission", "Plan mission", "M"), h("label", { class: "alt ctl" }, "alt ", alt, " m"));
    this.modeButtons.get("select")!.classList.add("active");
  }

  /** Keep the altitude input within the fleet's band once the config is known. */
  configLoaded(config: FleetConfig): void {
    if (!this.altInput) return;
    this.altInput.min = String(config.floor_m);
    this.altInput.max = String(config.ceiling_m);
    const v = Math.min(config.ceiling_m, Math.max(config.floor_m, this.d.ui.altitude));
    this.d.ui.altitude = v;
    this.altInput.value = String(v);
  }

  // ------------------------------------------------------------------ sending

  private send(msg: CommandMessage, summary: string): TrackedCommand {
    const droneId = "drone_id" in msg ? (msg.drone_id ?? null) : null;
    if (msg.type === "modify_waypoint") this.sentWaypoints.set(msg.command_id, [msg.new_waypoint]);
    else if (msg.type === "assign_mission") this.sentWaypoints.set(msg.command_id, msg.mission.waypoints);
    const t = this.d.log.track({ command_id: msg.command_id, command: msg.type, drone_id: droneId, summary }, this.d.now());
    const r = this.d.send(msg);
    if (!r.ok) {
      this.d.log.failLocally(msg.command_id, r.problem, this.d.now());
      this.sentWaypoints.delete(msg.command_id);
    }
    this.renderLedger(true);
    return t;
  }

  sendWaypoint(droneId: string, wp: Waypoint, why: string): void {
    const { ui } = this.d;
    const id = crypto.randomUUID();
    ui.rejected = null;
    ui.pendingTarget = { lat: wp.lat, lon: wp.lon, command_id: id };
    const t = this.send(
      { type: "modify_waypoint", command_id: id, drone_id: droneId, new_waypoint: wp, modification_reason: `operator: ${why}` },
      `waypoint ${fmt(wp)} @ ${Math.round(wp.alt_m)} m${why === MAP_CLICK ? "" : ` · ${why}`}`,
    );
    if (isFinal(t.status)) ui.pendingTarget = null;
    this.renderResult();
    this.d.changed();
  }

  private useSuggestion(s: AlternativeSuggestion): void {
    const r = this.d.ui.rejected;
    if (!r) return;
    const droneId = r.drone_id ?? this.d.ui.selected;
    if (r.command === "assign_mission") {
      // Replace the offending waypoint of the draft and let the operator assign again.
      const i = this.d.ui.draft.findIndex((w) => w.lat === r.target.lat && w.lon === r.target.lon);
      if (i >= 0) this.d.ui.draft[i] = { lat: s.lat, lon: s.lon, alt_m: s.alt_m };
      this.d.ui.rejected = null;
      this.renderMission();
      this.renderResult();
      this.d.changed();
      return;
    }
    if (droneId) this.sendWaypoint(droneId, { lat: s.lat, lon: s.lon, alt_m: s.alt_m }, `suggested alternative: ${s.reason}`);
  }

  private assign(droneId: string | undefined): void {
    const { ui } = this.d;
    if (!ui.draft.length) return;
    const id = crypto.randomUUID();
    ui.rejected = null;
    this.send(
      { type: "assign_mission", command_id: id, ...(droneId ? { drone_id: droneId } : {}), mission: { waypoints: [...ui.draft], priority: ui.priority } },
      `mission of ${ui.draft.length} waypoint${ui.draft.length === 1 ? "" : "s"} (${ui.priority})${droneId ? "" : ", edge picks"}`,
    );
    this.renderResult();
  }

  private confirmLand(droneId: string): void {
    const dlg = byId<HTMLDialogElement>("land-dialog");
    setText(byId("land-drone"), droneId);
    setText(byId("land-confirm"), `Land ${droneId} now`);
    const reason = byId<HTMLInputElement>("land-reason");
    reason.value = "";
    dlg.returnValue = "";
    dlg.onclose = () => {
      if (dlg.returnValue !== "land") return;
      this.send(
        { type: "emergency_land", command_id: crypto.randomUUID(), drone_id: droneId, ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) },
        `emergency land${reason.value.trim() ? `: ${reason.value.trim()}` : ""}`,
      );
    };
    dlg.showModal();
  }

  private override(e: CoordinationEventView, action: (typeof OVERRIDE_ACTIONS)[number]): void {
    this.send(
      { type: "coordination_override", command_id: crypto.randomUUID(), event_id: e.event_id, action, reason: "operator override from the dashboard" },
      `${action.replace(/_/g, " ")} for ${e.event_type.replace(/_/g, " ")} (${e.drone_ids.join(", ")})`,
    );
  }

  // ------------------------------------------------------------------ answers

  onResponse(r: CommandResponse, t: TrackedCommand | undefined): void {
    const { ui } = this.d;
    if (r.type === "hold_response") return;
    if (t?.mine) ui.lastAnswer = r;
    if (ui.pendingTarget?.command_id === r.command_id) ui.pendingTarget = null;
    if (r.type === "mission_assignment_response" && t?.mine) {
      ui.lastAssignment = r;
      if (r.success) ui.draft = [];
      this.renderMission();
    }
    if (t?.mine && r.status === "rejected" && (r.type === "waypoint_modification_response" || r.type === "mission_assignment_response")) {
      const params = this.targetOf(r);
      const suggestions = "alternative_suggestions" in r && Array.isArray(r.alternative_suggestions) ? r.alternative_suggestions : [];
      if (params) {
        ui.rejected = {
          command_id: r.command_id,
          command: t.command,
          drone_id: r.drone_id ?? t.drone_id,
          target: params,
          ...("rule" in r && typeof r.rule === "string" ? { rule: r.rule } : {}),
          ...(r.code ? { code: r.code } : {}),
          message: r.message,
          suggestions,
        };
      }
    } else if (t?.mine && ui.rejected?.command_id !== r.command_id && r.success) {
      ui.rejected = null;
    }
    if (isFinal(r.status)) this.sentWaypoints.delete(r.command_id);
    this.renderResult();
    this.renderLedger(true);
    this.d.changed();
  }

  /** Where a rejected command wanted to go: its waypoint, or the mission waypoint the rule names
   * ("waypoint 2: …"). */
  private targetOf(r: CommandResponse): Waypoint | null {
    const sent = this.sentWaypoints.get(r.command_id);
    if (!sent) return null;
    const m = /^waypoint (\d+):/.exec(r.message);
    return sent[m ? Number(m[1]) : 0] ?? null;
  }

  // ------------------------------------------------------------------ rendering

  renderSelected(now: number): void {
    const root = byId("selected");
    const { ui, model } = this.d;
    const id = ui.selected;
    const d = id ? model.drones.get(id) : undefined;
    if (!id || !d) {
      if (root.dataset.drone !== "") {
        root.dataset.drone = "";
        replaceChildren(root, h("p", { class: "muted" }, "Click a drone on the map or in the table."));
      }
      return;
    }
    const s = d.sample;
    const stale = model.isStale(d, now);
    const plan = model.plans.get(id);
    // Without a state reading, armed/status/mode are placeholders: say unknown, and what is inferred.
    const st = stateView(s);
    const fields: [string, string][] = [
      ["Status", st.long],
      ["Armed", st.armed],
      ["Mode", st.mode],
      ["Battery", `${s.battery_pct.toFixed(1)} %`],
      ["Altitude", `${s.alt_m.toFixed(1)} m`],
      ["Speed", `${s.speed_mps.toFixed(1)} m/s${s.climb_mps !== undefined ? ` · ${s.climb_mps >= 0 ? "↑" : "↓"}${Math.abs(s.climb_mps).toFixed(1)}` : ""}`],
      ["Heading", `${Math.round(s.heading_deg)}°`],
      ["Position", fmt(s)],
      ["Data age", `${formatAge(now - d.seenAt)}${stale ? " · STALE" : ""}`],
      ["Plan", plan ? (plan.kind === "mission" ? `mission ${plan.mission_id ?? ""} · ${plan.waypoints.length - plan.index} to go` : `waypoint ${fmt(plan.waypoints[0]!)} @ ${Math.round(plan.waypoints[0]!.alt_m)} m`) : "—"],
    ];
    if (root.dataset.drone !== id) {
      root.dataset.drone = id;
      const actions = this.d.canCommand
        ? h(
            "div",
            { class: "actions ctl" },
            h("button", { type: "button", class: "ctl", id: "act-waypoint", onclick: () => this.setMode("waypoint") }, "Set waypoint on map"),
            h("button", { type: "button", class: "danger ctl", id: "act-land", onclick: () => this.confirmLand(id) }, "Emergency land…"),
          )
        : null;
      replaceChildren(
        root,
        h("div", { class: "sel-head" }, h("span", { class: "sel-id" }, id), h("button", { type: "button", class: "ghost small", onclick: () => this.d.center(d.sample) }, "Center"), h("button", { type: "button", class: "ghost small", onclick: () => this.d.select(null) }, "✕")),
        h("dl", { class: "fields" }, ...fields.flatMap(([k]) => [h("dt", null, k), h("dd", { "data-field": k })])),
        actions,
      );
    }
    for (const [k, v] of fields) {
      const dd = root.querySelector(`dd[data-field="${k}"]`);
      if (dd) setText(dd, v);
    }
    const statusDd = root.querySelector<HTMLElement>('dd[data-field="Status"]');
    if (statusDd && statusDd.title !== st.title) statusDd.title = st.title;
    root.classList.toggle("stale", stale);
    root.classList.toggle("state-unknown", !st.known);
  }

  renderMission(): void {
    if (!this.d.canCommand) return;
    const { ui } = this.d;
    const root = byId("mission");
    const priority = h("select", { id: "priority", "aria-label": "Priority" }, ...MISSION_PRIORITIES.map((p) => h("option", { value: p, selected: p === ui.priority }, p)));
    priority.addEventListener("change", () => {
      const p = MissionPriority.safeParse(priority.value);
      if (p.success) ui.priority = p.data;
    });
    const list = ui.draft.length
      ? h(
          "ol",
          { class: "draft" },
          ...ui.draft.map((w, i) =>
            h(
              "li",
              null,
              `${fmt(w)} @ ${Math.round(w.alt_m)} m `,
              h("button", {
                type: "button",
                class: "link",
                title: "Remove",
                onclick: () => {
                  ui.draft.splice(i, 1);
                  this.renderMission();
                  this.d.changed();
                },
              }, "✕"),
            ),
          ),
        )
      : h("p", { class: "muted small" }, "Press “Plan mission” (M) and click the map to place waypoints.");
    const canAssign = ui.draft.length > 0;
    replaceChildren(
      root,
      list,
      h(
        "div",
        { class: "actions" },
        h("label", { class: "small" }, "priority ", priority),
        h("button", { type: "button", id: "assign-auto", class: "primary", disabled: !canAssign, onclick: () => this.assign(undefined) }, "Assign (edge picks)"),
        h("button", { type: "button", id: "assign-selected", disabled: !canAssign || !ui.selected, onclick: () => ui.selected && this.assign(ui.selected) }, ui.selected ? `Assign to ${ui.selected}` : "Assign to selected"),
        h("button", { type: "button", class: "ghost", disabled: !canAssign, onclick: () => ((ui.draft = []), this.renderMission(), this.d.changed()) }, "Clear"),
      ),
      ui.lastAssignment ? this.candidatesTable(ui.lastAssignment) : null,
    );
  }

  private candidatesTable(r: MissionAssignmentResponse): HTMLElement {
    if (!r.candidates.length) return h("p", { class: "muted small" }, "No candidates were ranked.");
    return h(
      "div",
      { class: "candidates" },
      h("div", { class: "small muted" }, r.drone_id ? `Assigned to ${r.drone_id} (${r.status}); ranked candidates:` : `Not assigned (${r.code ?? r.status}); ranked candidates:`),
      h(
        "table",
        { class: "mini", id: "candidates" },
        h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, "Drone"), h("th", { class: "num" }, "Score"), h("th", { class: "num" }, "ETA"), h("th", { class: "num" }, "Batt. after"), h("th", null, "Why"))),
        h(
          "tbody",
          null,
          ...r.candidates.map((c, i) =>
            h(
              "tr",
              { class: `${c.eligible ? "" : "ineligible"} ${c.drone_id === r.drone_id ? "chosen" : ""}` },
              h("td", null, String(i + 1)),
              h("td", null, c.drone_id),
              h("td", { class: "num" }, c.score.toFixed(2)),
              h("td", { class: "num" }, `${Math.round(c.eta_s)} s`),
              h("td", { class: "num" }, `${c.battery_after_pct.toFixed(0)} %`),
              h("td", { class: "small" }, c.eligible ? (c.reasons.join("; ") || "eligible") : c.reasons.join("; ") || "not eligible"),
            ),
          ),
        ),
      ),
    );
  }

  renderResult(): void {
    const { ui } = this.d;
    const panel = byId("result-panel");
    const root = byId("result");
    const r = ui.rejected;
    if (r && this.d.canCommand) {
      panel.hidden = false;
      replaceChildren(
        root,
        h(
          "div",
          { class: "result rejected", id: "rejection" },
          h("div", null, h("span", { class: "state rejected" }, "rejected"), ` ${r.command.replace(/_/g, " ")} ${r.drone_id ?? ""}`),
          h("div", { class: "rule" }, "Rule: ", h("code", { id: "rejection-rule" }, r.rule ?? r.code ?? "—")),
          h("div", { class: "msg" }, r.message),
          r.suggestions.length
            ? h(
                "div",
                { class: "suggestions" },
                h("div", { class: "small muted" }, r.command === "assign_mission" ? "Alternatives (click to replace the waypoint):" : "Alternatives (click to send; also on the map):"),
                ...r.suggestions.map((s, i) =>
                  h("button", { type: "button", class: "suggestion", "data-suggestion": i, onclick: () => this.useSuggestion(s) }, h("b", null, `${i + 1}`), ` ${fmt(s)} @ ${Math.round(s.alt_m)} m`, h("span", { class: "muted small" }, ` — ${s.reason}`)),
                ),
              )
            : h("div", { class: "small muted" }, "No alternative could be suggested."),
          h("button", { type: "button", class: "ghost small", onclick: () => ((ui.rejected = null), this.renderResult(), this.d.changed()) }, "Dismiss"),
        ),
      );
      return;
    }
    const a = ui.lastAnswer;
    if (!a || !this.d.canCommand) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    replaceChildren(
      root,
      h(
        "div",
        { class: `result ${a.success ? "ok" : "bad"}` },
        h("span", { class: `state ${a.status}` }, a.status),
        ` ${a.type.replace(/_response$/, "").replace(/_/g, " ")} · ${a.message}${a.duplicate ? " (repeat of an earlier command)" : ""}`,
      ),
    );
  }

  renderLedger(force = false): void {
    const { log } = this.d;
    if (!force && log.version === this.ledgerVersion) return;
    this.ledgerVersion = log.version;
    const items = log.list().slice(0, 40);
    const root = byId("ledger");
    if (!items.length) {
      replaceChildren(root, h("p", { class: "muted" }, "No commands yet."));
      return;
    }
    let list = root.querySelector(":scope > ol.cmds");
    if (!list) {
      list = h("ol", { class: "cmds" });
      replaceChildren(root, list);
    }
    // Keyed: with collision avoidance sending several commands a second at 1,000 drones, only the
    // commands that changed are rebuilt.
    keyedList(
      list,
      items,
      (t) => t.command_id,
      (t) => `${t.status}|${t.history.length}|${t.code ?? ""}|${t.message ?? ""}|${t.by ?? ""}|${t.drone_id ?? ""}|${t.summary}`,
      (t) => {
          const start = t.history[0]?.at ?? t.createdAt;
          const trail = t.history.map((s, i) => h("span", { class: `step ${s.status}` }, i === 0 ? `${s.status} ${formatClock(s.at)}` : `${s.status} +${Math.max(0, s.at - start)} ms`));
          return h(
            "li",
            { class: `cmd ${t.status}${t.mine ? " mine" : ""}`, "data-command-id": t.command_id, "data-status": t.status },
            h(
              "div",
              { class: "cmd-head" },
              h("span", { class: "cmd-type" }, t.command.replace(/_/g, " ")),
              t.drone_id ? h("span", { class: "cmd-drone" }, t.drone_id) : null,
              h("span", { class: `state ${t.status}` }, t.status),
            ),
            t.summary ? h("div", { class: "cmd-summary" }, t.summary) : null,
            h("div", { class: "cmd-trail" }, ...trail.flatMap((el, i) => (i ? [" → ", el] : [el]))),
            t.message && t.status !== "acked" ? h("div", { class: "cmd-msg" }, `${t.code ? `${t.code}: ` : ""}${t.message}`) : null,
            !t.mine && t.by ? h("div", { class: "cmd-by muted small" }, `by ${t.by}`) : null,
          );
      },
    );
  }

  renderEvents(): void {
    const { model } = this.d;
    // Only when events changed: telemetry bumps model.version many times a second.
    if (model.eventsVersion === this.eventsVersion) return;
    this.eventsVersion = model.eventsVersion;
    const events = [...model.events.values()].sort((a, b) => Number(b.status === "active") - Number(a.status === "active") || b.detected_at - a.detected_at);
    const active = events.filter((e) => e.status === "active").length;
    setText(byId("coord-count"), `${active} active · ${events.length - active} recent`);
    const root = byId("coordination");
    if (!events.length) {
      replaceChildren(root, h("p", { class: "muted" }, "No coordination events."));
      return;
    }
    let list = root.querySelector(":scope > ul.events");
    if (!list) {
      list = h("ul", { class: "events" });
      replaceChildren(root, list);
    }
    keyedList(
      list,
      events.slice(0, 20),
      (e) => e.event_id,
      (e) => `${e.status}|${e.strategy}|${e.time_to_conflict_s.toFixed(0)}|${e.min_horizontal_m.toFixed(0)}|${e.min_vertical_m.toFixed(0)}|${e.resolution_time_ms}|${e.overridden_by ?? ""}|${e.drone_ids.join(",")}`,
      (e) =>
          h(
            "li",
            { class: `event ${e.status}`, "data-event-id": e.event_id },
            h(
              "div",
              { class: "event-head" },
              h("span", { class: "event-type" }, e.event_type.replace(/_/g, " ")),
              ...e.drone_ids.map((id) => h("button", { type: "button", class: "link", onclick: () => this.d.select(id) }, id)),
              h("span", { class: `state ${e.status === "active" ? "sent" : e.status === "resolved" ? "acked" : "timeout"}` }, e.status),
            ),
            h(
              "div",
              { class: "small muted" },
              `${e.strategy.replace(/_/g, " ")} · conflict in ${e.time_to_conflict_s.toFixed(0)} s · min ${e.min_horizontal_m.toFixed(0)} m / ${e.min_vertical_m.toFixed(0)} m · ${formatClock(e.detected_at)}`,
              e.resolution_time_ms !== null ? ` · resolved in ${e.resolution_time_ms} ms` : "",
              e.overridden_by ? ` · overridden by ${e.overridden_by}` : "",
            ),
            this.d.canCommand && e.status === "active"
              ? h(
                  "div",
                  { class: "actions ctl" },
                  ...OVERRIDE_ACTIONS.map((a) => h("button", { type: "button", class: `small ${a === "dismiss" ? "ghost" : ""}`, "data-action": a, onclick: () => this.override(e, a) }, a.replace(/_/g, " "))),
                )
              : null,
          ),
    );
  }
}
