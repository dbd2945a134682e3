// A run state or gate outcome as a labelled badge (text, not only colour).
import type { Outcome, State } from "../api/client";

export function StateBadge({ state }: { state: State }) {
  return <span className={`badge state-${state.toLowerCase()}`}>{state}</span>;
}

export function OutcomeBadge({ outcome }: { outcome: Outcome }) {
  return <span className={`badge outcome-${outcome}`}>{outcome}</span>;
}
