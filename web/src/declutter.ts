/**
 * What the map draws for many drones (pure, tested in Node): dense spots become one cluster badge
 * with a count (its drones faded to dots underneath), and labels go only where they say something
 * and do not overlap. A drone that matters — the selected one, one in an active coordination
 * event, one in an emergency — is never clustered and is labelled first; the selected one always,
 * the others where their label overlaps no other (with dozens of conflicts at once, overlapping
 * labels would hide each other anyway).
 *
 * One pass over a screen grid: O(drones) per frame, no allocation per drone beyond the output.
 */

export type Marker = {
  id: string;
  x: number;
  y: number;
  /** Selected, conflicting or in an emergency: never clustered, labelled first. */
  priority: boolean;
  /** The selected drone: labelled whatever it overlaps. */
  pinned?: boolean;
};

type Box = { x0: number; y0: number; x1: number; y1: number };

export type Cluster = { x: number; y: number; count: number; ids: string[] };

export type DeclutterOptions = {
  /** Cell size of the density grid, CSS px. */
  cellPx: number;
  /** Non-priority drones in one cell from which they become a cluster. */
  clusterMin: number;
  /** Label every unclustered drone while at most this many are in view; above it, only the
   * priority ones (the rest would be unreadable anyway). */
  labelAllUpTo: number;
  /** Most labels in one view, the pinned one included. */
  maxLabels: number;
  /** Width of a drone's label in px (the caller measures and caches). */
  labelWidth(id: string): number;
  labelHeight: number;
  /** Offset of a label from its drone (to the right, baseline slightly below). */
  labelDx: number;
  labelDy: number;
  /** Half the size of a drone's marker: the labels of other drones keep off it. */
  markerPx: number;
};

export type Declutter = {
  clusters: Cluster[];
  /** Ids drawn as faded dots under a cluster badge. */
  clustered: Set<string>;
  /** Ids to label, in drawing order (priority first). */
  labels: string[];
};

export function declutter(markers: readonly Marker[], o: DeclutterOptions): Declutter {
  // 1. Density: non-priority drones per cell.
  const cells = new Map<number, Marker[]>();
  const key = (x: number, y: number) => Math.floor(x / o.cellPx) * 100_003 + Math.floor(y / o.cellPx);
  for (const m of markers) {
    if (m.priority) continue;
    const k = key(m.x, m.y);
    const list = cells.get(k);
    if (list) list.push(m);
    else cells.set(k, [m]);
  }
  const clusters: Cluster[] = [];
  const clustered = new Set<string>();
  for (const list of cells.values()) {
    if (list.length < o.clusterMin) continue;
    let sx = 0;
    let sy = 0;
    for (const m of list) {
      sx += m.x;
      sy += m.y;
      clustered.add(m.id);
    }
    clusters.push({ x: sx / list.length, y: sy / list.length, count: list.length, ids: list.map((m) => m.id) });
  }

  // 2. Labels, at most maxLabels: the pinned one wherever it falls; then the priority ones where
  // they cover no earlier label and no other priority drone; then, while few are in view, the
  // rest where they cover no label, cluster badge or drone.
  const free = markers.filter((m) => !clustered.has(m.id));
  const labelAll = free.length <= o.labelAllUpTo;
  const placed: Box[] = [];
  const labels: string[] = [];
  const r = o.markerPx;
  const box = (m: Marker): Box => ({ x0: m.x - r, y0: m.y - r, x1: m.x + r, y1: m.y + r });
  const hits = (b: Box, boxes: readonly (Box & { id: string })[], own: string) =>
    boxes.some((mb) => mb.id !== own && mb.x0 < b.x1 && b.x0 < mb.x1 && mb.y0 < b.y1 && b.y0 < mb.y1);
  const labelBox = (m: Marker): Box => {
    const x0 = m.x + o.labelDx;
    const y1 = m.y + o.labelDy + 3;
    return { x0, y0: y1 - o.labelHeight, x1: x0 + o.labelWidth(m.id), y1 };
  };
  const tryPlace = (m: Marker, force: boolean) => {
    if (!force && labels.length >= o.maxLabels) return;
    const lb = labelBox(m);
    if (!force && placed.some((b) => b.x0 < lb.x1 && lb.x0 < b.x1 && b.y0 < lb.y1 && lb.y0 < b.y1)) return;
    placed.push(lb);
    labels.push(m.id);
  };
  for (const m of free) if (m.pinned) tryPlace(m, true);
  // A priority label keeps off the other priority drones (drawn large, above everything).
  const priorityBoxes = free.filter((m) => m.priority).map((m) => ({ id: m.id, ...box(m) }));
  for (const m of free) if (m.priority && !m.pinned && !hits(labelBox(m), priorityBoxes, m.id)) tryPlace(m, false);
  // Cluster badges and the other drones keep the remaining labels off (a priority label may lie
  // over them: it matters more, and the map draws drones above labels).
  if (labelAll) {
    for (const c of clusters) placed.push({ x0: c.x - 14, y0: c.y - 14, x1: c.x + 14, y1: c.y + 14 });
    const markerBoxes = free.map((m) => ({ id: m.id, ...box(m) }));
    for (const m of free) if (!m.priority && !hits(labelBox(m), markerBoxes, m.id)) tryPlace(m, false);
  }
  return { clusters, clustered, labels };
}
