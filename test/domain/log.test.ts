/** The edge's structured log records (edge/domain/log.ts): ids as fields, never a credential. */
import { describe, expect, it } from "vitest";
import { formatLog, scrub } from "../../edge/domain/log";

const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLXBhcnQ";

describe("formatLog", () => {
  it("puts level, message and the ids in top-level fields Workers Logs can query", () => {
    const rec = formatLog("warn", "command timed out", { fleet: "zurich-1", command_id: "c-1", event_id: "ev-9", drone_id: "d1", rows: 3 });
    expect(rec).toEqual({ level: "warn", msg: "command timed out", fleet: "zurich-1", command_id: "c-1", event_id: "ev-9", drone_id: "d1", rows: 3 });
    // Plain JSON: what console.log hands to Workers Logs survives a round trip unchanged.
    expect(JSON.parse(JSON.stringify(rec))).toEqual(rec);
  });

  it("turns an error into name, message and stack", () => {
    const err = new TypeError("boom");
    const rec = formatLog("error", "fleet object alarm failed", { fleet: "f" }, err);
    expect(rec.error).toMatchObject({ name: "TypeError", message: "boom", stack: expect.stringContaining("TypeError: boom") });
    expect(formatLog("error", "x", {}, "just a string").error).toEqual({ message: "just a string" });
  });

  it("never lets a token through: secret-named fields, JWTs, Bearer values and token query parameters", () => {
    const err = new Error(`fetch https://edge.example/v1/fleets/f/ws?access_token=${JWT} failed with Authorization: Bearer ${JWT}`);
    const rec = formatLog("error", `bad request with ${JWT}`, {
      fleet: "f",
      token: JWT,
      authorization: `Bearer ${JWT}`,
      headers: { cookie: `CF_Authorization=${JWT}`, "cf-access-jwt-assertion": JWT, accept: "json" },
      url: `https://edge.example/x?token=abc&fleet=f`,
      nested: [{ deep: { deeper: JWT } }],
    }, err);
    const text = JSON.stringify(rec);
    expect(text).not.toContain(JWT);
    expect(text).not.toContain("c2lnbmF0dXJlLXBhcnQ");
    expect(text).not.toContain("token=abc");
    expect(rec).toMatchObject({ token: "[redacted]", authorization: "[redacted]", headers: { cookie: "[redacted]", "cf-access-jwt-assertion": "[redacted]", accept: "json" } });
    expect(rec.url).toBe("https://edge.example/x?token=[redacted]&fleet=f");
  });

  it("bounds what it writes", () => {
    expect(scrub("x".repeat(5000)).length).toBeLessThan(2100);
    const deep = { a: { b: { c: { d: { e: 1 } } } } };
    expect(JSON.stringify(formatLog("info", "m", { deep }))).toContain("[…]");
    const circular: Record<string, unknown> = { fleet: "f" };
    circular.self = circular;
    expect(() => JSON.stringify(formatLog("info", "m", { circular }))).not.toThrow();
  });
});
