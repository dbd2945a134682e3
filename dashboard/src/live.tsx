// The data layer of the dashboard: every run page fetched through TanStack Query, the
// realtime feed laid over it, and the open run's detail refreshed when the feed says it
// changed.
import { createContext, useContext, useEffect, useMemo, useRef, useState } from "react";
import { useInfiniteQuery, useQueryClient } from "@tanstack/react-query";
import { getToken, listRuns, type RunSummary } from "./api/client";
import { loadConfig } from "./api/config";
import { Feed, type FeedStatus } from "./api/feed";
import { mergeRuns } from "./runs";

export interface Live {
  runs: RunSummary[];
  /** Every page read. */
  complete: boolean;
  loading: boolean;
  error: Error | null;
  feed: FeedStatus;
  feedDetail?: string;
  retry(): void;
  /** Drops the feed's connection (it reconnects and backfills). */
  dropFeed(): void;
}

const LiveContext = createContext<Live | null>(null);

export function useLive(): Live {
  const v = useContext(LiveContext);
  if (!v) throw new Error("useLive outside LiveProvider");
  return v;
}

export function LiveProvider({ children, token }: { children: React.ReactNode; token: string }) {
  const qc = useQueryClient();
  const [overlay, setOverlay] = useState<Map<string, RunSummary>>(() => new Map());
  const [feed, setFeed] = useState<{ status: FeedStatus; detail?: string }>({ status: "connecting" });
  const feedRef = useRef<Feed | null>(null);

  const query = useInfiniteQuery({
    queryKey: ["runs", token],
    queryFn: ({ pageParam }) => listRuns(pageParam),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next,
  });
  const { hasNextPage, isFetchingNextPage, fetchNextPage, isError } = query;
  const pages = query.data?.pages.length ?? 0;
  // Read every page, one after another, so that filters see every run. (`pages` is a
  // dependency because a fast answer can coalesce fetching → idle into one render.)
  useEffect(() => {
    if (hasNextPage && !isFetchingNextPage && !isError) void fetchNextPage();
  }, [hasNextPage, isFetchingNextPage, isError, fetchNextPage, pages]);

  useEffect(() => {
    let cancelled = false;
    let f: Feed | null = null;
    // The feed's URL is the deployment's (config.json), /api/feed by default.
    void loadConfig().then((config) => {
      if (cancelled) return;
      f = new Feed(
        {
          onRun: (run) => {
            setOverlay((m) => new Map(m).set(run.id, run));
            void qc.invalidateQueries({ queryKey: ["run", run.id] });
          },
          onResync: () => {
            void qc.invalidateQueries({ queryKey: ["runs"] });
            void qc.invalidateQueries({ queryKey: ["run"] });
          },
          onStatus: (status, detail) => setFeed({ status, detail }),
          onFirstOpen: () => {
            // Whatever was read before the feed was subscribed may have changed since.
            void qc.invalidateQueries({ queryKey: ["run"] });
            if ((qc.getQueryState(["runs", token])?.dataUpdatedAt ?? 0) > 0) {
              void qc.invalidateQueries({ queryKey: ["runs", token] });
            }
          },
        },
        { token: getToken() || undefined, url: config.feedUrl },
      );
      feedRef.current = f;
      f.start();
    });
    return () => {
      cancelled = true;
      f?.stop();
    };
  }, [qc, token]);

  const listed = useMemo(() => query.data?.pages.flatMap((p) => p.runs) ?? [], [query.data]);
  const runs = useMemo(() => mergeRuns(listed, overlay), [listed, overlay]);

  const value: Live = {
    runs,
    complete: !!query.data && !query.hasNextPage,
    loading: query.isPending,
    error: query.error,
    feed: feed.status,
    feedDetail: feed.detail,
    retry: () => void query.refetch(),
    dropFeed: () => feedRef.current?.drop(),
  };
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}
