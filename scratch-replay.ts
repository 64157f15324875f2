import { readFileSync } from "node:fs";
import { ResolutionPlanner } from "./edge/domain/conflicts";
const d = JSON.parse(readFileSync(process.argv[2]!, "utf8"));
const p = new ResolutionPlanner(d.drones, d.config);
for (let i = 0; i < 8; i++) {
  const pl = i === 0 ? p : new ResolutionPlanner(d.drones, d.config);
  const t = performance.now();
  const r = pl.choose(d.conflict, { exclude: new Set(d.exclude) });
  console.log((performance.now() - t).toFixed(1), r.strategy, r.verified, r.commands.length, r.reason?.slice(0, 100));
}
const inv = d.drones.filter((x: { drone_id: string }) => d.conflict.drone_ids.includes(x.drone_id));
console.log(JSON.stringify(inv));
