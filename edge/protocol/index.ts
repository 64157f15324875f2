/**
 * The wire protocol, defined once: zod schemas for every frame between relay, edge and dashboards
 * and for the REST bodies, with the TypeScript types derived from them (`z.infer`) and the shared
 * constants (type lists, limits, id formats). Every frame is a JSON text frame with a `type`
 * discriminant and snake_case fields.
 *
 * Owns: the shapes on the wire and their parsing. Not rules about them (safety, assignment,
 * conflicts live in edge/domain) and not the fleet configuration (edge/domain/fleet-config.ts).
 * May import: zod only — nothing runtime-specific, so the same module loads in workerd, Node (the
 * relay) and the browser (the dashboard bundle). Everything else imports from here.
 *
 * The four directions, each with one parse function that never throws (a typed value, or an
 * `error` frame with code bad_json | unknown_type | invalid_message and a reason):
 *   D→E  dashboard → edge   parseDashboardMessage   DashboardMessage   (./dashboard)
 *   E→D  edge → dashboard   parseEdgeToDashboard    ServerMessage      (./dashboard)
 *   R→E  relay → edge       parseRelayMessage       RelayMessage       (./relay)
 *   E→R  edge → relay       parseEdgeToRelay        EdgeToRelay        (./relay)
 * REST bodies (GET /status, /commands, /missions, /coordination, /analytics/…) and their error
 * body are in ./rest, read with `parseRestBody(schema, json)`.
 */
export * from "./common";
export * from "./dashboard";
export * from "./relay";
export * from "./rest";
