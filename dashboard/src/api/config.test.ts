import { afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_CONFIG, loadConfig, parseConfig } from "./config";

const answer = (status: number, body: string, type = "application/json") =>
  vi.fn(async () => new Response(body, { status, headers: { "content-type": type } }));

afterEach(() => vi.restoreAllMocks());

describe("config.json", () => {
  it("gives the deployment's feed URL, read beside the page", async () => {
    const fetchImpl = answer(200, JSON.stringify({ feedUrl: "wss://a1b2.execute-api.us-east-1.amazonaws.com/feed" }));
    const config = await loadConfig("https://d111.cloudfront.net/runs/r1", fetchImpl as unknown as typeof fetch);
    expect(config.feedUrl).toBe("wss://a1b2.execute-api.us-east-1.amazonaws.com/feed");
    expect(fetchImpl.mock.calls[0]).toEqual([
      "https://d111.cloudfront.net/runs/config.json",
      { headers: { accept: "application/json" } },
    ]);
  });

  it("defaults to the same origin's /api/feed without a config (vaia up)", async () => {
    for (const fetchImpl of [
      answer(404, "not found", "text/plain"),
      // The single-page fallback answers index.html for any path.
      answer(200, "<!doctype html><html></html>", "text/html"),
      vi.fn(async () => {
        throw new TypeError("network");
      }),
    ]) {
      expect(await loadConfig("http://127.0.0.1:8080/", fetchImpl as unknown as typeof fetch)).toEqual(DEFAULT_CONFIG);
    }
  });

  it("refuses a bad setting with a warning naming it", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    expect(parseConfig({ feedUrl: 42 })).toEqual(DEFAULT_CONFIG);
    expect(parseConfig({ feedUrl: "javascript:alert(1)" })).toEqual(DEFAULT_CONFIG);
    expect(parseConfig([])).toEqual(DEFAULT_CONFIG);
    expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([
      expect.stringContaining("feedUrl"),
      expect.stringContaining("feedUrl"),
      expect.stringContaining("not a JSON object"),
    ]);
    expect(parseConfig({ feedUrl: "/feed" })).toEqual({ feedUrl: "/feed" });
  });
});
