// The run state machine drawn as a graph: the happy path in a row, FAILED and ROLLBACK
// below, the path this run took highlighted and its current state ringed.
import type { State } from "../api/client";
import { HAPPY_PATH } from "../runs";

const W = 118;
const H = 34;
const GAP = 22;

function position(s: State): { x: number; y: number } {
  const i = HAPPY_PATH.indexOf(s);
  if (i >= 0) return { x: 10 + i * (W + GAP), y: 10 };
  if (s === "FAILED") return { x: 10 + 2 * (W + GAP), y: 100 };
  return { x: 10 + 6 * (W + GAP), y: 100 }; // ROLLBACK, under PROMOTED
}

export function StateGraph({ path, current }: { path: State[]; current: State }) {
  const visited = new Set(path);
  const taken = new Set(path.slice(1).map((to, i) => `${path[i]}>${to}`));
  const edges: [State, State][] = [];
  for (let i = 0; i + 1 < HAPPY_PATH.length; i++) edges.push([HAPPY_PATH[i], HAPPY_PATH[i + 1]]);
  edges.push(["PROMOTED", "ROLLBACK"]);
  for (let i = 0; i + 1 < path.length; i++) {
    if (path[i + 1] === "FAILED") edges.push([path[i], "FAILED"]);
    // An operator's retry of an errored gate goes back to its stage.
    if (path[i] === "FAILED") edges.push(["FAILED", path[i + 1]]);
  }
  const nodes: State[] = [...HAPPY_PATH, "FAILED", "ROLLBACK"];
  const width = 10 + HAPPY_PATH.length * (W + GAP);
  return (
    <figure className="graph">
      <svg
        viewBox={`0 0 ${width} 150`}
        role="img"
        aria-label={`State machine: path taken ${path.join(" → ") || "none yet"}; current state ${current}`}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor" />
          </marker>
        </defs>
        {edges.map(([a, b]) => {
          const p = position(a);
          const q = position(b);
          const horizontal = p.y === q.y;
          const x1 = horizontal ? p.x + W : p.x + W / 2;
          const y1 = horizontal ? p.y + H / 2 : p.y + H;
          const x2 = horizontal ? q.x : q.x + W / 2;
          const y2 = horizontal ? q.y + H / 2 : q.y;
          const on = taken.has(`${a}>${b}`);
          return (
            <line
              key={`${a}>${b}`}
              x1={x1}
              y1={y1}
              x2={x2}
              y2={y2}
              className={on ? "edge taken" : "edge"}
              data-taken={on ? "true" : "false"}
              markerEnd="url(#arrow)"
            />
          );
        })}
        {nodes.map((s) => {
          const p = position(s);
          const cls = ["node", visited.has(s) ? "visited" : "", s === current ? "current" : "", `state-${s.toLowerCase()}`]
            .filter(Boolean)
            .join(" ");
          return (
            <g key={s} className={cls} data-state={s}>
              <rect x={p.x} y={p.y} width={W} height={H} rx={6} />
              <text x={p.x + W / 2} y={p.y + H / 2 + 4} textAnchor="middle">
                {s}
              </text>
            </g>
          );
        })}
      </svg>
      <figcaption>
        Path taken: {path.length ? path.join(" → ") : "none yet"} (now <strong>{current}</strong>)
      </figcaption>
    </figure>
  );
}
