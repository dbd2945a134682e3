// A small history router: `/` (runs, with `?state=&repo=` filters), `/runs/<id>` and
// `/production`. Deep links work because `vaia up` answers index.html for unknown paths.
import { useEffect, useState } from "react";

export type Route =
  | { view: "runs"; state: string; repo: string }
  | { view: "run"; id: string }
  | { view: "production" };

export function parseRoute(pathname: string, search: string): Route {
  const m = /^\/runs\/([^/]+)\/?$/.exec(pathname);
  if (m) return { view: "run", id: decodeURIComponent(m[1]) };
  if (pathname === "/production") return { view: "production" };
  const q = new URLSearchParams(search);
  return { view: "runs", state: q.get("state") ?? "", repo: q.get("repo") ?? "" };
}

export function navigate(to: string): void {
  window.history.pushState(null, "", to);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function useRoute(): Route {
  const [loc, setLoc] = useState(() => [window.location.pathname, window.location.search]);
  useEffect(() => {
    const on = () => setLoc([window.location.pathname, window.location.search]);
    window.addEventListener("popstate", on);
    return () => window.removeEventListener("popstate", on);
  }, []);
  return parseRoute(loc[0], loc[1]);
}

/** Follows a same-origin link without a reload (modifier clicks open as usual). */
export function onLinkClick(e: React.MouseEvent<HTMLAnchorElement>): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const href = e.currentTarget.getAttribute("href");
  if (!href || !href.startsWith("/")) return;
  e.preventDefault();
  navigate(href);
}
