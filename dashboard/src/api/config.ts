// The deployment's settings for the dashboard, read from `config.json` served beside the
// built assets. `vaia up` serves none: every setting then has its same-origin default.
// On AWS the template's FeedUrl output (the WebSocket API's wss:// URL) goes there:
//   {"feedUrl": "wss://<api>.execute-api.<region>.amazonaws.com/feed"}

export interface DashboardConfig {
  /** The realtime feed's WebSocket URL, absolute (ws:, wss:) or relative to the page. */
  feedUrl: string;
}

export const DEFAULT_CONFIG: DashboardConfig = { feedUrl: "/api/feed" };

/**
 * Reads `config.json` next to the page. A missing file (404, or the single-page fallback
 * answering HTML) gives the defaults; a file with a bad setting gives the defaults for
 * that setting and a warning naming it.
 */
export async function loadConfig(
  base: string = document.baseURI,
  fetchImpl: typeof fetch = fetch,
): Promise<DashboardConfig> {
  let raw: unknown;
  try {
    const res = await fetchImpl(new URL("config.json", base).toString(), {
      headers: { accept: "application/json" },
    });
    if (!res.ok) return { ...DEFAULT_CONFIG };
    raw = await res.json();
  } catch {
    return { ...DEFAULT_CONFIG };
  }
  return parseConfig(raw);
}

export function parseConfig(raw: unknown): DashboardConfig {
  const config = { ...DEFAULT_CONFIG };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    console.warn("config.json: not a JSON object; using the defaults");
    return config;
  }
  const feedUrl = (raw as Record<string, unknown>).feedUrl;
  if (feedUrl !== undefined) {
    if (typeof feedUrl === "string" && /^(wss?:\/\/|https?:\/\/|\/)/.test(feedUrl)) {
      config.feedUrl = feedUrl;
    } else {
      console.warn(
        `config.json: feedUrl must be a ws(s)://, http(s):// or /path URL; using ${DEFAULT_CONFIG.feedUrl}`,
      );
    }
  }
  return config;
}
