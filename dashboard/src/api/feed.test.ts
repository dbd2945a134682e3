import { afterEach, describe, expect, it, vi } from "vitest";
import { backoff, Feed } from "./feed";
import type { RunSummary } from "./client";

class FakeSocket {
  static all: FakeSocket[] = [];
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onopen: (() => void) | null = null;
  constructor(
    public url: string,
    public protocols?: string[],
  ) {
    FakeSocket.all.push(this);
  }
  send(msg: object) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  close() {
    this.onclose?.();
  }
}

const summary = (id: string) => ({ id }) as unknown as RunSummary;

afterEach(() => {
  FakeSocket.all = [];
  vi.useRealTimers();
});

describe("Feed", () => {
  it("reconnects with backoff and asks for what it missed", () => {
    vi.useFakeTimers();
    const runs: string[] = [];
    const resyncs: string[] = [];
    let firstOpens = 0;
    const f = new Feed(
      { onRun: (r) => runs.push(r.id), onResync: (r) => resyncs.push(r), onFirstOpen: () => firstOpens++ },
      { base: "http://127.0.0.1:9/", token: "t0k", WebSocketImpl: FakeSocket as unknown as typeof WebSocket },
    );
    f.start();
    const first = FakeSocket.all[0];
    expect(first.url).toBe("ws://127.0.0.1:9/api/feed");
    expect(first.protocols).toEqual(["vaia", "bearer.t0k"]);
    first.send({ type: "hello", epoch: "e1", seq: 4 });
    first.send({ type: "run", seq: 5, run: summary("r5") });
    first.close();
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(backoff(0));
    expect(FakeSocket.all).toHaveLength(2);
    const second = FakeSocket.all[1];
    expect(second.url).toBe("ws://127.0.0.1:9/api/feed?since=5&epoch=e1");
    second.send({ type: "hello", epoch: "e1", seq: 7 });
    second.send({ type: "run", seq: 6, run: summary("r6") });
    second.send({ type: "run", seq: 7, run: summary("r7") });
    expect(runs).toEqual(["r5", "r6", "r7"]);
    expect(resyncs).toEqual([]);
    expect(firstOpens).toBe(1);
    // The server cannot backfill: the caller re-reads, and live changes continue from hello.
    second.close();
    vi.advanceTimersByTime(backoff(0));
    const third = FakeSocket.all[2];
    expect(third.url).toContain("since=7");
    third.send({ type: "hello", epoch: "e2", seq: 2 });
    expect(resyncs).toEqual(["the stack restarted"]);
    expect(f.cursor).toEqual({ seq: 2, epoch: "e2" });
    f.stop();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(3);
  });

  it("uses the deployment's feed URL and says hello once open, with its cursor after a reconnect", () => {
    vi.useFakeTimers();
    const resyncs: string[] = [];
    const runs: string[] = [];
    const f = new Feed(
      { onRun: (r) => runs.push(r.id), onResync: (r) => resyncs.push(r) },
      {
        base: "https://d111.cloudfront.net/",
        url: "wss://a1b2.execute-api.us-east-1.amazonaws.com/feed",
        token: "t0k",
        WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
      },
    );
    f.start();
    const first = FakeSocket.all[0];
    expect(first.url).toBe("wss://a1b2.execute-api.us-east-1.amazonaws.com/feed");
    expect(first.protocols).toEqual(["vaia", "bearer.t0k"]);
    const said: unknown[] = [];
    first.send = (msg: unknown) => said.push(JSON.parse(msg as string));
    first.onopen?.();
    expect(said).toEqual([{ action: "hello" }]);
    // What the AWS feed answers: hello, then changes.
    first.onmessage?.({ data: JSON.stringify({ type: "hello", epoch: "aws", seq: 1000 }) });
    first.onmessage?.({ data: JSON.stringify({ type: "run", seq: 1500, run: summary("r1") }) });
    first.close();
    vi.advanceTimersByTime(backoff(0));
    const second = FakeSocket.all[1];
    expect(second.url).toBe("wss://a1b2.execute-api.us-east-1.amazonaws.com/feed?since=1500&epoch=aws");
    const said2: unknown[] = [];
    second.send = (msg: unknown) => said2.push(JSON.parse(msg as string));
    second.onopen?.();
    expect(said2).toEqual([{ action: "hello", since: 1500, epoch: "aws" }]);
    second.onmessage?.({ data: JSON.stringify({ type: "hello", epoch: "aws", seq: 2000 }) });
    second.onmessage?.({ data: JSON.stringify({ type: "resync", reason: "no backlog" }) });
    expect(resyncs).toEqual(["no backlog"]);
    expect(runs).toEqual(["r1"]);
    expect(f.cursor).toEqual({ seq: 2000, epoch: "aws" });
    f.stop();
  });

  it("backs off exponentially up to a ceiling", () => {
    expect([0, 1, 2, 3].map((a) => backoff(a))).toEqual([250, 500, 1000, 2000]);
    expect(backoff(30)).toBe(10_000);
  });
});
