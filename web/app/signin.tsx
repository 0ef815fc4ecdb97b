// Development sign-in: pick a member id, get a token from the gateway's
// development endpoint. In production the brand's sign-in hands the app a
// token instead (docs/web.md) and this page says so.
import { useState } from "preact/hooks";
import { DevSignInUnavailable, devToken } from "../shared/auth.js";
import { browserZone } from "../shared/time.js";

export function SignIn({ onToken, expired }: { onToken: (token: string) => void; expired: boolean }) {
  const [member, setMember] = useState("m-1");
  const [zone, setZone] = useState(browserZone());
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const [unavailable, setUnavailable] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setProblem(null);
    try {
      const token = await devToken(member.trim(), "player");
      const { ensureMember } = await import("./member.js");
      await ensureMember(member.trim(), zone);
      onToken(token);
    } catch (error) {
      if (error instanceof DevSignInUnavailable) setUnavailable(true);
      else setProblem(error instanceof Error ? error.message : String(error));
    } finally {
      setBusy(false);
    }
  }

  if (unavailable) {
    return (
      <main class="signin">
        <h1>Loyalty Arcade</h1>
        <p role="alert">Sign in through your brand's app: it opens this page with your session.</p>
      </main>
    );
  }
  return (
    <main class="signin">
      <h1>Loyalty Arcade</h1>
      {expired && <p role="alert">Your session ended. Sign in again.</p>}
      <form onSubmit={submit} aria-describedby="dev-note">
        <p id="dev-note" class="hint">
          Development sign-in: this gateway runs with its development secret and issues a token for any member id.
        </p>
        <div class="field">
          <label for="member-id">Member id</label>
          <input id="member-id" name="member" value={member} required pattern="[A-Za-z0-9._@+\-]{1,64}" autocomplete="username" onInput={(e) => setMember(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="member-zone">Your time zone</label>
          <input id="member-zone" name="zone" value={zone} required onInput={(e) => setZone(e.currentTarget.value)} />
        </div>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {problem && <p role="alert" class="error">{problem}</p>}
      </form>
    </main>
  );
}
