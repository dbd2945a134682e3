// Empty, loading and error states that say what to do next.
import { ApiError } from "../api/client";

export function ErrorBox({ error, retry, what }: { error: Error; retry?: () => void; what: string }) {
  const status = error instanceof ApiError ? error.status : 0;
  let hint = "Check that `vaia up` is running, then retry.";
  if (status === 401) hint = "This stack needs an API token with the read role: enter it under “API token” above.";
  if (status === 403) hint = "Your token lacks the role this needs: ask for one with it.";
  if (status === 404) hint = "There is no such run: it may belong to another stack's data directory.";
  return (
    <div role="alert" className="error">
      <h2>Could not load {what}</h2>
      <p>{error.message}</p>
      <p>{hint}</p>
      {retry ? (
        <button type="button" onClick={retry}>
          Retry
        </button>
      ) : null}
    </div>
  );
}

export function EmptyStack() {
  const origin = window.location.origin;
  return (
    <section className="empty" aria-labelledby="empty-heading">
      <h1 id="empty-heading">No runs yet</h1>
      <p>
        A run starts when GitHub (or you) sends a signed <code>push</code> webhook to this stack. Point a repository's
        webhook at <code>{origin}/webhooks/github</code> with content type <code>application/json</code> and the secret
        in <code>VAIA_GITHUB_WEBHOOK_SECRET</code>, or send one by hand:
      </p>
      <pre>{`body=$(cat events/github/push.json)    # GitHub's push payload, as in the repository
sig=$(printf %s "$body" | openssl dgst -sha256 -hmac "$VAIA_GITHUB_WEBHOOK_SECRET" | cut -d' ' -f2)
curl -X POST ${origin}/webhooks/github -H 'content-type: application/json' \\
  -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $(uuidgen)" \\
  -H "X-Hub-Signature-256: sha256=$sig" -d "$body"`}</pre>
      <p>
        Then upload the commit's evidence (<code>vaia evidence upload --dir … --repo owner/agent --commit &lt;sha&gt;</code>)
        and the run moves through its gates here, live. <code>vaia demo</code> does all of this with seven commits.
      </p>
    </section>
  );
}
