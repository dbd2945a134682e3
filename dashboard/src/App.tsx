// The dashboard's shell: navigation, the API token, the feed's status and the current view.
import { useState } from "react";
import { getToken, setToken } from "./api/client";
import { LiveProvider, useLive } from "./live";
import { onLinkClick, useRoute } from "./router";
import { Production } from "./components/Production";
import { RunDetail } from "./components/RunDetail";
import { RunsList } from "./components/RunsList";

export function App() {
  const [token, setTok] = useState(getToken);
  return (
    <LiveProvider token={token}>
      <Shell
        token={token}
        onToken={(t) => {
          setToken(t);
          setTok(t);
        }}
      />
    </LiveProvider>
  );
}

function Shell({ token, onToken }: { token: string; onToken(t: string): void }) {
  const route = useRoute();
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <nav aria-label="Main">
          <a href="/" onClick={onLinkClick} aria-current={route.view !== "production" ? "page" : undefined}>
            <strong>vaia</strong> runs
          </a>
          <a href="/production" onClick={onLinkClick} aria-current={route.view === "production" ? "page" : undefined}>
            production
          </a>
        </nav>
        <FeedStatus />
        <TokenForm token={token} onToken={onToken} />
      </header>
      <main id="main">
        {route.view === "run" ? (
          <RunDetail id={route.id} />
        ) : route.view === "production" ? (
          <Production />
        ) : (
          <RunsList state={route.state} repo={route.repo} />
        )}
      </main>
    </>
  );
}

function FeedStatus() {
  const { feed, feedDetail } = useLive();
  const text = feed === "open" ? "live" : feed === "connecting" ? "connecting…" : "reconnecting…";
  return (
    <span className={`feed feed-${feed}`} role="status" aria-live="polite" title={feedDetail} data-feed={feed}>
      ● {text}
    </span>
  );
}

function TokenForm({ token, onToken }: { token: string; onToken(t: string): void }) {
  const [value, setValue] = useState(token);
  return (
    <form
      className="token"
      onSubmit={(e) => {
        e.preventDefault();
        onToken(value.trim());
      }}
    >
      <label>
        API token{" "}
        <input
          type="password"
          autoComplete="off"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          placeholder={token ? "set" : "none (open stack)"}
        />
      </label>{" "}
      <button type="submit">Use</button>
    </form>
  );
}
