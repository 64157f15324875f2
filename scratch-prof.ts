import { readFileSync } from "node:fs";
import { ResolutionPlanner } from "./edge/domain/conflicts";
const d = JSON.parse(readFileSync(process.argv[2]!, "utf8"));
for (let i = 0; i < 5; i++) new ResolutionPlanner(d.drones, d.config).choose(d.conflict, {});
const t = performance.now();
const N = 30;
let pl = 0;
for (let i = 0; i < N; i++) {
  const q = performance.now();
  const p = new ResolutionPlanner(d.drones, d.config);
  pl += performance.now() - q;
  p.choose(d.conflict, {});
}
console.log("per choose incl planner", ((performance.now() - t) / N).toFixed(1), "planner", (pl / N).toFixed(1));
