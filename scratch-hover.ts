import { detectConflicts, type CoordinationDrone } from "./edge/domain/conflicts";
import { defaultFleetConfig } from "./edge/domain/fleet-config";
import { gridPosition } from "./bench/lib/loadgen";
const config = defaultFleetConfig();
const drones: CoordinationDrone[] = [];
for (let i = 0; i < 1000; i++) {
  const p = gridPosition(config.home, i);
  drones.push({ drone_id: `d${i}`, lat: p.lat, lon: p.lon, alt_m: p.alt_m, heading_deg: 0, speed_mps: 0, climb_mps: 0, status: "flying", armed: true, path: [] } as CoordinationDrone);
}
const ms: number[] = [];
for (let i = 0; i < 60; i++) { const t = performance.now(); detectConflicts({ drones, config, now: i * 500 }); ms.push(performance.now() - t); }
const w = ms.slice(10).sort((a, b) => a - b);
console.log("hover 1000: p50", w[w.length >> 1]!.toFixed(2), "max", w.at(-1)!.toFixed(2));
