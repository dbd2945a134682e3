// The realtime feed client: a WebSocket to `/api/feed` (or the deployment's `feedUrl`, see
// config.ts) that reconnects with exponential backoff (and jitter) and, on reconnecting,
// asks for the changes it missed since the last sequence it saw (`?since=&epoch=`). The
// server answers `resync` when it cannot backfill (it restarted, or the gap is older than
// its backlog): the caller then re-reads the list. Once open, the client also says
// `{"action":"hello","since":…,"epoch":…}`: the AWS feed (API Gateway, which cannot send
// during the handshake) answers hello and, after a reconnect, resync; `vaia up` has
// answered from the URL already and ignores it.
import type { RunSummary } from "./client";

export type FeedStatus = "connecting" | "open" | "closed";

export type FeedMessage =
  | { type: "hello"; epoch: string; seq: number }
  | { type: "run"; seq: number; run: RunSummary }
  | { type: "resync"; reason: string };

export interface FeedHandlers {
  onRun(run: RunSummary): void;
  /** The client may have missed changes: re-read what it shows. */
  onResync(reason: string): void;
  onStatus?(status: FeedStatus, detail?: string): void;
  /**
   * The first connection is up: changes from now on arrive here, but what the caller read
   * before it may already be stale (a first connection has nothing to backfill from).
   */
  onFirstOpen?(): void;
}

export interface FeedOptions {
  /** Page URL the feed's URL is resolved against (default: location.href). */
  base?: string;
  /** The feed's URL, absolute or relative to `base` (default: /api/feed). */
  url?: string;
  token?: string;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Injected for tests. */
  WebSocketImpl?: typeof WebSocket;
}

/** The delay before reconnect attempt `attempt` (0-based), without jitter. */
export function backoff(attempt: number, min = 250, max = 10_000): number {
  return Math.min(max, min * 2 ** Math.min(attempt, 16));
}

export class Feed {
  private ws: WebSocket | null = null;
  private seq: number | null = null;
  private epoch: string | null = null;
  private helloSeq = 0;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(
    private handlers: FeedHandlers,
    private opts: FeedOptions = {},
  ) {}

  /** The last sequence seen and its epoch (what a reconnect asks from). */
  get cursor(): { seq: number | null; epoch: string | null } {
    return { seq: this.seq, epoch: this.epoch };
  }

  url(): string {
    const u = new URL(this.opts.url ?? "/api/feed", this.opts.base ?? window.location.href);
    if (u.protocol === "https:") u.protocol = "wss:";
    else if (u.protocol === "http:") u.protocol = "ws:";
    if (this.seq !== null && this.epoch !== null) {
      u.searchParams.set("since", String(this.seq));
      u.searchParams.set("epoch", this.epoch);
    }
    return u.toString();
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.ws?.close();
    this.ws = null;
  }

  /** Drops the connection as a network failure would (tests and the "reconnect" button). */
  drop(): void {
    this.ws?.close();
  }

  private connect(): void {
    const Impl = this.opts.WebSocketImpl ?? WebSocket;
    this.handlers.onStatus?.("connecting");
    const protocols = this.opts.token ? ["vaia", `bearer.${this.opts.token}`] : ["vaia"];
    let ws: WebSocket;
    try {
      ws = new Impl(this.url(), protocols);
    } catch (e) {
      this.scheduleReconnect(String(e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const hello: { action: "hello"; since?: number; epoch?: string } = { action: "hello" };
      if (this.seq !== null && this.epoch !== null) {
        hello.since = this.seq;
        hello.epoch = this.epoch;
      }
      try {
        ws.send(JSON.stringify(hello));
      } catch {
        // Closing already: onclose reconnects.
      }
    };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = () => {
      if (this.ws === ws) this.ws = null;
      this.scheduleReconnect("connection closed");
    };
    ws.onerror = () => {
      // onclose follows and reconnects.
    };
  }

  private receive(data: unknown): void {
    if (typeof data !== "string") return;
    let msg: FeedMessage;
    try {
      msg = JSON.parse(data) as FeedMessage;
    } catch {
      return;
    }
    switch (msg.type) {
      case "hello": {
        this.helloSeq = msg.seq;
        const first = this.epoch === null;
        this.attempt = 0;
        this.handlers.onStatus?.("open");
        if (first || msg.epoch !== this.epoch) {
          // Nothing to backfill from: what the caller shows may predate this connection.
          this.epoch = msg.epoch;
          this.seq = msg.seq;
          if (first) this.handlers.onFirstOpen?.();
          else this.handlers.onResync("the stack restarted");
        }
        break;
      }
      case "run":
        this.seq = msg.seq;
        this.handlers.onRun(msg.run);
        break;
      case "resync":
        // Sent right after hello: the caller re-reads everything up to hello's sequence,
        // and the live changes that follow continue from it.
        this.seq = this.helloSeq;
        this.handlers.onResync(msg.reason);
        break;
    }
  }

  private scheduleReconnect(detail: string): void {
    if (this.stopped) return;
    this.handlers.onStatus?.("closed", detail);
    const base = backoff(this.attempt++, this.opts.minDelayMs, this.opts.maxDelayMs);
    const delay = base / 2 + Math.random() * (base / 2);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }
}
