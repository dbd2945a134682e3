import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { LiveProvider } from "../live";
import { RunsList } from "./RunsList";
import { RunView } from "./RunDetail";
import type { RunDetail, RunSummary } from "../api/client";
import promoted from "../fixtures/run-promoted.json";

class SilentSocket {
  onmessage = null;
  onclose = null;
  onerror = null;
  close() {}
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.history.replaceState(null, "", "/");
});

function many(n: number): RunSummary[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `r${String(n - i).padStart(6, "0")}`,
    repository: i % 2 ? "acme/odd" : "acme/even",
    commit: (i.toString(16) + "0".repeat(40)).slice(0, 40),
    trigger: "push",
    state: i % 3 === 0 ? "FAILED" : "PROMOTED",
    gates: {},
    created_at: new Date(Date.UTC(2026, 0, 1) - i * 1000).toISOString(),
    updated_at: new Date(Date.UTC(2026, 0, 1) - i * 1000 + 500).toISOString(),
  }));
}

function serve(answer: (url: string) => Response) {
  const calls: { url: string; auth: string | null }[] = [];
  vi.stubGlobal("WebSocket", SilentSocket);
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init?: RequestInit) => {
      // The deployment's config.json: none, as under `vaia up`.
      if (url.endsWith("/config.json")) return new Response("not found", { status: 404 });
      calls.push({ url, auth: new Headers(init?.headers).get("authorization") });
      return answer(url);
    }),
  );
  return calls;
}

function mount(ui: React.ReactNode, token = "") {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={qc}>
      <LiveProvider token={token}>{ui}</LiveProvider>
    </QueryClientProvider>,
  );
}

const json = (v: unknown, status = 200) =>
  new Response(JSON.stringify(v), { status, headers: { "content-type": "application/json" } });

describe("RunsList", () => {
  it("reads every page of 2,000 runs but renders only the visible rows", async () => {
    // jsdom lays nothing out: give the scroller a viewport's size.
    vi.spyOn(HTMLElement.prototype, "clientHeight", "get").mockReturnValue(800);
    vi.spyOn(HTMLElement.prototype, "clientWidth", "get").mockReturnValue(1000);
    const all = many(2_000);
    const calls = serve((url) => {
      const q = new URL(url, "http://x").searchParams;
      const start = Number(q.get("after") ?? 0);
      const limit = Number(q.get("limit"));
      const page = all.slice(start, start + limit);
      const next = start + limit < all.length ? String(start + limit) : undefined;
      return json({ runs: page, next });
    });
    mount(<RunsList state="" repo="" />);
    await screen.findByText("2000 runs", undefined, { timeout: 20_000 });
    expect(calls).toHaveLength(4);
    const list = screen.getByRole("list", { name: /Pipeline runs/ });
    const rows = within(list).getAllByRole("listitem");
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.length).toBeLessThan(60);
    expect(rows[0].getAttribute("aria-setsize")).toBe("2000");
    const link = within(rows[0]).getByRole("link");
    expect(link.textContent).toContain("push");
    expect(link.getAttribute("href")).toBe("/runs/r002000");
    vi.restoreAllMocks();
  }, 30_000);

  it("filters by state and repository through the URL", async () => {
    serve(() => json({ runs: many(30) }));
    mount(<RunsList state="FAILED" repo="acme/even" />);
    await screen.findByText("5 of 30 runs");
    fireEvent.change(screen.getByLabelText("State"), { target: { value: "PROMOTED" } });
    expect(window.location.search).toBe("?state=PROMOTED&repo=acme%2Feven");
  });

  it("a fresh stack explains how to send a webhook", async () => {
    serve(() => json({ runs: [] }));
    mount(<RunsList state="" repo="" />);
    expect(await screen.findByRole("heading", { name: "No runs yet" })).toBeTruthy();
    expect(screen.getByText(/\/webhooks\/github/, { selector: "code" })).toBeTruthy();
    expect(screen.getByText(/X-Hub-Signature-256/)).toBeTruthy();
  });

  it("a refused token says what to do, and the token is sent", async () => {
    const calls = serve(() => json({ error: "GET /api/runs needs a token with role read" }, 401));
    localStorage.setItem("vaia.token", "s3cret");
    mount(<RunsList state="" repo="" />, "s3cret");
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("needs a token with role read");
    expect(alert.textContent).toContain("enter it under “API token”");
    expect(calls[0].auth).toBe("Bearer s3cret");
    localStorage.removeItem("vaia.token");
  });
});

describe("RunView operator actions", () => {
  it("a refused rollback shows the API's reason", async () => {
    serve((url) =>
      url.endsWith("/rollback") ? json({ error: "token \"viewer\" lacks role operate" }, 403) : json({ runs: [] }),
    );
    mount(<RunView detail={promoted as unknown as RunDetail} />);
    fireEvent.click(screen.getByRole("button", { name: "Roll back" }));
    await waitFor(() => expect(screen.getByText(/Refused \(HTTP 403\): token "viewer" lacks role operate/)).toBeTruthy());
  });

  it("an errored gate that failed the run can be retried, and only that one", async () => {
    const calls: { url: string; body: string }[] = [];
    vi.stubGlobal("WebSocket", SilentSocket);
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string, init?: RequestInit) => {
        calls.push({ url, body: String(init?.body ?? "") });
        return url.endsWith("/retry") ? json({ status: "accepted", run_id: "r", message_id: "m" }, 202) : json({ runs: [] });
      }),
    );
    const errored = structuredClone(promoted) as unknown as RunDetail;
    errored.run.state = "FAILED";
    errored.run.failure = { gate: "eval", reason: "gate eval error: the judge is unreachable" };
    errored.verdicts.eval.outcome = "error";
    mount(<RunView detail={errored} />);
    expect(screen.queryByRole("button", { name: "Roll back" })).toBeNull();
    fireEvent.change(screen.getByPlaceholderText("what was fixed"), { target: { value: "judge is back" } });
    fireEvent.click(screen.getByRole("button", { name: "Retry gate eval" }));
    await waitFor(() => expect(calls.some((c) => c.url.endsWith("/retry"))).toBe(true));
    const sent = calls.find((c) => c.url.endsWith("/retry"))!;
    expect(JSON.parse(sent.body)).toEqual({ gate: "eval", reason: "judge is back" });
    cleanup();

    // A failing verdict is a finding: no retry is offered.
    const failing = structuredClone(errored);
    failing.verdicts.eval.outcome = "fail";
    mount(<RunView detail={failing} />);
    expect(screen.queryByRole("button", { name: /Retry gate/ })).toBeNull();
  });
});
