// The typed client of the vaia API. Types come from `schema.d.ts`, generated from
// functions/api/src/openapi.json by openapi-typescript (`npm run gen:api`); a test
// regenerates it and fails when the two differ.
import type { components } from "./schema";

export type RunSummary = components["schemas"]["RunSummary"];
export type RunList = components["schemas"]["RunList"];
export type RunDetail = components["schemas"]["RunDetail"];
export type Run = components["schemas"]["Run"];
export type RunEvent = components["schemas"]["Event"];
export type Verdict = components["schemas"]["Verdict"];
export type Finding = Verdict["findings"][number];
export type State = components["schemas"]["State"];
export type Outcome = components["schemas"]["Outcome"];
export type VersionRecord = components["schemas"]["VersionRecord"];
export type VersionList = components["schemas"]["VersionList"];
export type AliasList = components["schemas"]["AliasList"];
export type CtEvaluation = components["schemas"]["CtEvaluation"];
export type CtEvaluations = components["schemas"]["CtEvaluations"];

const TOKEN_KEY = "vaia.token";

export function getToken(): string {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

export function setToken(token: string): void {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lasts for this page only.
  }
}

/** An answer of the API that was not a success, with its `{"error": …}` message. */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `the stack did not answer (${String(e)}): is vaia up running?`);
  }
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // fall through: reported below
  }
  if (!res.ok) {
    const msg =
      json && typeof json === "object" && "error" in json
        ? String((json as { error: unknown }).error)
        : `${method} ${path}: HTTP ${res.status}`;
    throw new ApiError(res.status, msg);
  }
  if (json === undefined) throw new ApiError(res.status, `${method} ${path}: the answer is not JSON`);
  return json as T;
}

export const PAGE_SIZE = 500;

export function listRuns(after?: string, limit = PAGE_SIZE): Promise<RunList> {
  const q = new URLSearchParams({ limit: String(limit) });
  if (after) q.set("after", after);
  return request<RunList>("GET", `/api/runs?${q}`);
}

export function getRun(id: string): Promise<RunDetail> {
  return request<RunDetail>("GET", `/api/runs/${encodeURIComponent(id)}`);
}

/** `owner/name` as two escaped path segments. */
function repoPath(repo: string): string {
  return repo.split("/").map(encodeURIComponent).join("/");
}

export function listVersions(repo: string): Promise<VersionList> {
  return request<VersionList>("GET", `/api/registry/${repoPath(repo)}/versions`);
}

export function listAliases(repo: string): Promise<AliasList> {
  return request<AliasList>("GET", `/api/registry/${repoPath(repo)}/aliases`);
}

/** The CT budget's recent evaluations of `repo`, newest first. */
export function listCtEvaluations(repo: string, limit = 30): Promise<CtEvaluations> {
  return request<CtEvaluations>("GET", `/api/ct/${repoPath(repo)}?limit=${limit}`);
}

export type Action = "approve" | "rollback" | "retry";

/// An operator request; `gate` names the gate to run again (retry only).
export function act(id: string, action: Action, reason?: string, gate?: string) {
  return request<components["schemas"]["Accepted"]>("POST", `/api/runs/${encodeURIComponent(id)}/${action}`, {
    ...(reason ? { reason } : {}),
    ...(gate ? { gate } : {}),
  });
}
